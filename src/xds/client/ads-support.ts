/**
 * What the ADS client needs besides the protocol: mTLS channel credentials,
 * decoding one resource, and subscription helpers.
 */
import * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import { RESOURCE_TYPES, TYPE_URL, unpackAny, type AnyMessage, type ResourceType } from '../protos.ts';

/** Subscribes to every resource of a type (Listener and Cluster only), sent as an empty resource_names list. */
export const WILDCARD = '*';
/** Types whose responses carry every subscribed resource (absent means deleted). */
export const FULL_SET_TYPES: ReadonlySet<ResourceType> = new Set(['listener', 'cluster']);

export type AdsSubscription = readonly string[] | typeof WILDCARD;

/** The PEMs of an mTLS connection to the control plane. */
export interface AdsTls {
  /** CA bundle the control plane's certificate must chain to. */
  readonly ca: Buffer;
  /** This client's certificate chain and key. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Name checked against the server's certificate (and sent as :authority) instead of the host in `server`. */
  readonly serverName?: string | undefined;
}

/** One resource as the client holds it. */
export interface AdsResource {
  readonly name: string;
  /** As received: what a relay passes on, and what a cache stores. */
  readonly resource: AnyMessage;
  /** Decoded with unpackAny: snake_case fields, enums as names, nested Anys still packed. */
  readonly message: Record<string, unknown>;
}


/** mTLS to `server` (`host:port`) with `tls`, and the channel options that go with it. */
export function channelCredentials(server: string, tls: AdsTls): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  const options: grpc.ChannelOptions = {
    // A control plane that vanishes without closing the connection (a partition) is noticed within ~40 s.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_receive_message_length': 64 << 20,
  };
  if (tls.serverName !== undefined) {
    options['grpc.ssl_target_name_override'] = tls.serverName;
    options['grpc.default_authority'] = tls.serverName;
    return { credentials: grpc.credentials.createSsl(tls.ca, tls.key, tls.cert), options };
  }
  const host = server.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) === 0) return { credentials: grpc.credentials.createSsl(tls.ca, tls.key, tls.cert), options };
  // grpc-js sends the target host as the TLS server name, and Node refuses an IP there (SNI is for host
  // names: RFC 6066). So the name sent is a placeholder, and the certificate is checked against the IP itself.
  options['grpc.ssl_target_name_override'] = IP_TARGET_SERVER_NAME;
  return { credentials: grpc.credentials.createSsl(tls.ca, tls.key, tls.cert, { checkServerIdentity: (_name, cert) => checkServerIdentity(host, cert) }), options };
}

/** The TLS server name sent to a control plane dialled by IP address (.invalid: a name that never resolves, RFC 2606). */
const IP_TARGET_SERVER_NAME = 'xds-server.invalid';

/** Decodes one resource of a response; throws a message naming it when it cannot be used. */
export function decode(type: ResourceType, any: AnyMessage, index: number): AdsResource {
  if (any.type_url !== TYPE_URL[type]) throw new Error(`resources[${index}]: type_url "${any.type_url}" in a ${type} response (expected ${TYPE_URL[type]})`);
  let message: Record<string, unknown>;
  try {
    message = unpackAny(any);
  } catch (error) {
    throw new Error(`resources[${index}]: cannot decode: ${(error as Error).message}`, { cause: error });
  }
  const name = type === 'endpoint' ? message.cluster_name : message.name;
  if (typeof name !== 'string' || name === '') throw new Error(`resources[${index}]: the ${type} has no ${type === 'endpoint' ? 'cluster_name' : 'name'}`);
  return { name, resource: { type_url: any.type_url, value: Buffer.from(any.value) }, message };
}

export function checkSubscription(type: ResourceType, names: AdsSubscription): void {
  if (names === WILDCARD && !FULL_SET_TYPES.has(type)) throw new Error(`${type}: the wildcard is for listener and cluster only`);
}

export function normalize(names: AdsSubscription): AdsSubscription {
  return names === WILDCARD ? WILDCARD : [...new Set(names)].sort();
}

export function sameSubscription(a: AdsSubscription, b: AdsSubscription): boolean {
  if (a === WILDCARD || b === WILDCARD) return a === b;
  return a.length === b.length && a.every((name, i) => name === b[i]);
}

export function countsByType(): Record<ResourceType, number> {
  return Object.fromEntries(RESOURCE_TYPES.map((type) => [type, 0])) as Record<ResourceType, number>;
}
