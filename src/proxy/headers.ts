/** Which headers cross the proxy. Everything else, custom and `-bin` metadata included, passes unchanged. */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

/** Connection-specific headers (RFC 9113 §8.2.2) and the ones the proxy rewrites itself. */
const REQUEST_DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings', 'grpc-timeout']);
const RESPONSE_DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

function copyExcept(source: IncomingHttpHeaders, drop: ReadonlySet<string>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in source) {
    if (!drop.has(name)) out[name] = source[name];
  }
  return out;
}

export function upstreamRequestHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  return copyExcept(incoming, REQUEST_DROP);
}

export function downstreamResponseHeaders(upstream: IncomingHttpHeaders): OutgoingHttpHeaders {
  return copyExcept(upstream, RESPONSE_DROP);
}
