/**
 * The backend side of a handshake: a new connection to the chosen endpoint
 * (TCP, or TLS with the cluster's CA and identity checks), the upgrade
 * request, and the backend's answer read by Node's HTTP/1.1 client. Every
 * session has a connection of its own: WebSocket backends are HTTP/1.1, and
 * a tunnel holds its connection for as long as it lives.
 */
import type * as http from 'node:http';
import type * as https from 'node:https';
import type * as tls from 'node:tls';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { httpModule, httpsModule, tlsModule } from '../builtins.ts';
import { subjectAltNameChecker } from '../security/san.ts';
import type { UpstreamTls } from '../upstream/endpoint-pool.ts';
import { checkBackendAccept, type Negotiated, type RequestHeaders } from './handshake.ts';

export interface BackendTarget {
  readonly host: string;
  readonly port: number;
  readonly tls: UpstreamTls | undefined;
}

export interface UpgradeRequest {
  /** Path and query. */
  readonly target: string;
  /** Everything to send but the handshake's own fields, which are set here. */
  readonly headers: Record<string, string | string[]>;
  readonly key: string;
  /** What the client offered (subprotocols, extensions), to check the backend's choice against. */
  readonly offered: RequestHeaders;
  readonly connectTimeoutMs: number;
  /** From the request's start to the backend's answer. */
  readonly handshakeTimeoutMs: number;
}

/** How the backend answered. */
export type BackendAnswer =
  | { readonly kind: 'upgraded'; readonly socket: Duplex; readonly head: Buffer; readonly headers: http.IncomingHttpHeaders; readonly negotiated: Negotiated }
  /** Any status but 101: the client is told the same. */
  | { readonly kind: 'refused'; readonly status: number; readonly headers: http.IncomingHttpHeaders; readonly body: Buffer }
  /** A 101 that is not a WebSocket handshake for this key: 502. */
  | { readonly kind: 'bad_accept'; readonly reason: string }
  /** No connection: another endpoint may be tried. */
  | { readonly kind: 'connect_failure'; readonly reason: string }
  /** Connected, then no answer in time (504), or the connection broke before one (502). */
  | { readonly kind: 'timeout'; readonly reason: string }
  | { readonly kind: 'broken'; readonly reason: string };

/** A refusal's body is passed on up to this much (an error page, not a download). */
const MAX_REFUSAL_BODY = 64 << 10;

/** Sends the upgrade; resolves once with the answer. `abort()` gives up (the client left), resolving 'broken'. */
export function upgradeBackend(target: BackendTarget, request: UpgradeRequest): { answer: Promise<BackendAnswer>; abort(): void } {
  let settle!: (answer: BackendAnswer) => void;
  let settled = false;
  const answer = new Promise<BackendAnswer>((resolve) => {
    settle = (value) => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      clearTimeout(handshakeTimer);
      resolve(value);
    };
  });
  let connected = false;
  const options: https.RequestOptions = {
    host: target.host,
    port: target.port,
    method: 'GET',
    path: request.target,
    setHost: false,
    agent: false,
    headers: {
      ...request.headers,
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-key': request.key,
      'sec-websocket-version': '13',
    },
    ...(target.tls && tlsOptions(target.host, target.tls)),
  };
  let outgoing: http.ClientRequest;
  try {
    outgoing = (target.tls ? httpsModule() : httpModule()).request(options);
  } catch (error) {
    // A field HTTP/2 allows and HTTP/1.1 does not (a control character in a value): nothing was sent.
    return { answer: Promise.resolve({ kind: 'refused', status: 400, headers: {}, body: Buffer.from(`the request cannot be sent on over HTTP/1.1: ${(error as Error).message}\n`) }), abort: () => {} };
  }
  outgoing.on('socket', (socket: Socket) => {
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      connected = true;
      clearTimeout(connectTimer);
    });
  });
  const connectTimer = setTimeout(() => {
    settle({ kind: 'connect_failure', reason: `connect timed out after ${request.connectTimeoutMs} ms` });
    outgoing.destroy();
  }, request.connectTimeoutMs);
  const handshakeTimer = setTimeout(() => {
    settle({ kind: 'timeout', reason: `no answer to the upgrade within ${request.handshakeTimeoutMs} ms` });
    outgoing.destroy();
  }, request.handshakeTimeoutMs);
  connectTimer.unref();
  handshakeTimer.unref();

  outgoing.on('error', (error: Error) => {
    settle(connected ? { kind: 'broken', reason: `the backend connection broke: ${error.message}` } : { kind: 'connect_failure', reason: error.message });
  });
  outgoing.on('upgrade', (response: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const negotiated = checkBackendAccept(response.headers, request.key, request.offered);
    if (typeof negotiated === 'string') {
      socket.destroy();
      return settle({ kind: 'bad_accept', reason: negotiated });
    }
    if (settled) return void socket.destroy();
    settle({ kind: 'upgraded', socket, head, headers: response.headers, negotiated });
  });
  outgoing.on('response', (response: http.IncomingMessage) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      if (size >= MAX_REFUSAL_BODY) return;
      chunks.push(chunk.subarray(0, MAX_REFUSAL_BODY - size));
      size += chunk.length;
    });
    const done = () => {
      settle({ kind: 'refused', status: response.statusCode ?? 502, headers: response.headers, body: Buffer.concat(chunks) });
      outgoing.destroy();
    };
    response.on('end', done);
    response.on('error', done);
    response.on('close', done);
  });
  outgoing.end();
  return {
    answer,
    abort: () => {
      settle({ kind: 'broken', reason: 'the client left during the handshake' });
      outgoing.destroy();
    },
  };
}

function tlsOptions(host: string, upstream: UpstreamTls): https.RequestOptions & tls.ConnectionOptions {
  return {
    ca: upstream.ca,
    ...(upstream.cert && upstream.key && { cert: upstream.cert, key: upstream.key }),
    servername: upstream.serverName ?? (isIP(host) ? undefined : host),
    ALPNProtocols: ['http/1.1'],
    minVersion: 'TLSv1.2',
    ...(upstream.serverName !== undefined && { checkServerIdentity: (_host: string, cert: tls.PeerCertificate) => tlsModule().checkServerIdentity(upstream.serverName!, cert) }),
    ...(upstream.verifySubjectAltNames !== undefined && { checkServerIdentity: subjectAltNameChecker(upstream.verifySubjectAltNames) }),
  };
}
