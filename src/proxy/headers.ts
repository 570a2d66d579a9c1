/**
 * Which headers cross the proxy. Everything else, custom and `-bin` metadata
 * included, passes unchanged. HTTP/2 forbids connection-specific headers
 * (RFC 9113 §8.2.2) and nghttp2 rejects messages that carry them, so header
 * objects are passed on as they are, minus what the proxy rewrites itself.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

/** Reuses the incoming object: it belongs to this one RPC and copying it costs on every call. */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  // The deadline is re-stated by the proxy, reduced by the time already spent.
  if (incoming['grpc-timeout'] !== undefined) delete incoming['grpc-timeout'];
  return incoming;
}

export function downstreamResponseHeaders(upstream: IncomingHttpHeaders): OutgoingHttpHeaders {
  return upstream;
}

/**
 * Names the endpoint that served the RPC, for `switchyard verify` (docs/verify.md). Only on listeners
 * with `expose_upstream: true`: it reveals internal addresses. A trailers-only response has one header
 * block, so there it travels with the status (clients read it as trailing metadata).
 */
export const UPSTREAM_HEADER = 'x-switchyard-upstream';

/** Adds UPSTREAM_HEADER to the response's headers, which belong to this one RPC. */
export function exposeUpstream(headers: IncomingHttpHeaders, endpoint: string): IncomingHttpHeaders {
  headers[UPSTREAM_HEADER] = endpoint;
  return headers;
}
