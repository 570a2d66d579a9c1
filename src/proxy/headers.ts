/**
 * Which headers cross the proxy. Everything else, custom and `-bin` metadata
 * included, passes unchanged. HTTP/2 forbids connection-specific headers
 * (RFC 9113 §8.2.2) and HTTP/2 stacks reject messages that carry them, so
 * header maps are passed on as they are, minus what the proxy rewrites itself.
 */
import type { HeaderMap } from '../grpc/streams.ts';

/** Reuses the incoming map: it belongs to this one RPC and copying it costs on every call. */
export function upstreamRequestHeaders(incoming: HeaderMap): HeaderMap {
  // The deadline is re-stated by the proxy, reduced by the time already spent.
  if (incoming['grpc-timeout'] !== undefined) delete incoming['grpc-timeout'];
  return incoming;
}

/**
 * Names the endpoint that served the RPC, for `switchyard verify` (docs/verify.md). Only on listeners
 * with `expose_upstream: true`: it reveals internal addresses. A trailers-only response has one header
 * block, so there it travels with the status (clients read it as trailing metadata).
 */
export const UPSTREAM_HEADER = 'x-switchyard-upstream';

/** Adds UPSTREAM_HEADER to the response's headers, which belong to this one RPC. */
export function exposeUpstream(headers: HeaderMap, endpoint: string): HeaderMap {
  headers[UPSTREAM_HEADER] = endpoint;
  return headers;
}
