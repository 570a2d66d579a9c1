/**
 * Node built-ins that only some configs use, loaded at their first use: TLS
 * (listeners, clusters, mTLS identities), HTTP/1.1 (WebSocket, gRPC-Web,
 * plain requests), crypto (trace ids, WebSocket handshakes, certificates),
 * DNS discovery, zlib (gzipped Connect JSON) and node:cluster for `--workers`. A plaintext proxy never
 * loads them: node:tls alone, with the crypto it pulls in, is about 8 MiB of
 * an idle proxy's RSS (docs/performance.md).
 *
 * They are required as CommonJS because an ES-module import evaluates the
 * module at start whether or not anything calls it, and builds its whole
 * namespace, whose lazy exports load still more (node:http's load undici,
 * node:http2 and zlib).
 */
import type * as Cluster from 'node:cluster';
import type * as Crypto from 'node:crypto';
import type * as DnsPromises from 'node:dns/promises';
import type * as Http from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import type * as Tls from 'node:tls';
import type * as Zlib from 'node:zlib';

const require = createRequire(import.meta.url);

let tls: typeof Tls | undefined;
let crypto: typeof Crypto | undefined;
let http: typeof Http | undefined;
let https: typeof Https | undefined;
let dns: typeof DnsPromises | undefined;
let cluster: Cluster.Cluster | undefined;
let zlib: typeof Zlib | undefined;

export const tlsModule = (): typeof Tls => (tls ??= require('node:tls') as typeof Tls);
export const cryptoModule = (): typeof Crypto => (crypto ??= require('node:crypto') as typeof Crypto);
export const httpModule = (): typeof Http => (http ??= require('node:http') as typeof Http);
export const httpsModule = (): typeof Https => (https ??= require('node:https') as typeof Https);
export const dnsModule = (): typeof DnsPromises => (dns ??= require('node:dns/promises') as typeof DnsPromises);
export const clusterModule = (): Cluster.Cluster => (cluster ??= require('node:cluster') as Cluster.Cluster);
export const zlibModule = (): typeof Zlib => (zlib ??= require('node:zlib') as typeof Zlib);
