/**
 * The ADS server's dealings with grpc-js: credentials, who the caller is,
 * the service definition (responses go out as bytes encoded once for every
 * stream, response-encoder.ts), and resetting a stream whose client stopped
 * reading.
 */
import * as grpc from '@grpc/grpc-js';
import { constants as http2 } from 'node:http2';
import { ANONYMOUS, identityOfCertificate, type CallerIdentity } from '../../security/identity.ts';
import { adsService } from '../protos.ts';

/** PEM contents for the server's own mTLS credentials. */
export interface AdsServerTls {
  /** The CA bundle client certificates must chain to. */
  readonly caPem: Buffer | string;
  readonly certPem: Buffer | string;
  readonly keyPem: Buffer | string;
}

export function serverCredentials(options: { tls?: AdsServerTls; credentials?: grpc.ServerCredentials; insecure?: boolean }): grpc.ServerCredentials {
  const given = [options.tls !== undefined, options.credentials !== undefined, options.insecure === true].filter(Boolean).length;
  if (given !== 1) throw new Error('startAdsServer needs exactly one of tls, credentials and insecure: true');
  if (options.credentials) return options.credentials;
  if (options.tls) {
    const { caPem, certPem, keyPem } = options.tls;
    return grpc.ServerCredentials.createSsl(Buffer.from(caPem), [{ cert_chain: Buffer.from(certPem), private_key: Buffer.from(keyPem) }], true);
  }
  return grpc.ServerCredentials.createInsecure();
}

/** The verified client certificate's identity; anonymous when there is none (grpc-js only reports a certificate that verified). */
export function callerOf(call: grpc.ServerDuplexStream<unknown, unknown>): CallerIdentity {
  const certificate = call.getAuthContext().sslPeerCertificate;
  return certificate ? identityOfCertificate(certificate) : ANONYMOUS;
}

export function insecureIdentity(name: string): CallerIdentity {
  const spiffe = name.startsWith('spiffe://');
  return {
    authenticated: true,
    spiffeId: spiffe ? name : undefined,
    uris: spiffe ? [name] : [],
    dnsNames: [],
    commonName: spiffe ? undefined : name,
    certificateSha256: undefined,
    label: name,
  };
}

/**
 * The AggregatedDiscoveryService with responses written as bytes: a Buffer
 * passes through as the encoded message (anything else is encoded by
 * proto-loader, as before). Requests are decoded by proto-loader.
 */
export function byteResponseService(): grpc.ServiceDefinition {
  const { service } = adsService();
  const methods: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service)) {
    const serialize = method.responseSerialize;
    methods[name] = { ...method, responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : serialize(value)) };
  }
  return methods as grpc.ServiceDefinition;
}

/** The part of Node's ServerHttp2Stream the server writes to directly. */
export interface RawStream {
  readonly destroyed: boolean;
  close(code: number): void;
  write(chunk: Buffer, callback: (error?: Error | null) => void): boolean;
}

/**
 * The HTTP/2 stream under a server call, found by walking grpc-js's call
 * chain (pinned version: each intercepting call holds the next as
 * `nextCall`, the last one the stream); undefined when the shape is not as
 * expected, or when interceptors sit in between (they must see every message).
 * grpc-js copies every message into a buffer of its own before writing; the
 * ADS server writes the same encoded response to thousands of streams, so it
 * writes it to the stream itself, and resets a stream whose client stopped
 * reading (grpc-js would queue its status behind the unsent data).
 */
export function rawStreamOf(call: grpc.ServerDuplexStream<unknown, unknown>, throughInterceptors = false): RawStream | undefined {
  let link: unknown = (call as unknown as { call?: unknown }).call;
  for (let depth = 0; depth < 16 && link !== null && typeof link === 'object'; depth++) {
    const stream = (link as { stream?: Partial<RawStream> }).stream;
    if (stream && typeof stream.close === 'function' && typeof stream.write === 'function') return stream as RawStream;
    if (!throughInterceptors) return undefined;
    link = (link as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

/** Resets the call's HTTP/2 stream with RST_STREAM (CANCEL), dropping whatever is queued for it. Returns false if it cannot. */
export function resetStream(call: grpc.ServerDuplexStream<unknown, unknown>): boolean {
  const stream = rawStreamOf(call, true);
  if (!stream) return false;
  if (!stream.destroyed) stream.close(http2.NGHTTP2_CANCEL);
  return true;
}
