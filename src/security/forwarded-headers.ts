/**
 * Headers that describe the client's connection (x-forwarded-for, forwarded,
 * x-real-ip, x-forwarded-proto, …) are only as true as whoever set them. A
 * listener trusts `trusted_proxy_hops` L7 proxies in front of it (Envoy's
 * xff_num_trusted_hops, with use_remote_address):
 *
 * - 0 (the default): the peer is the client. Whatever such headers it sent are
 *   removed, along with `x-envoy-*` (which Envoy backends read as its own), and
 *   the proxy states the truth: `x-forwarded-for: <peer address>` and
 *   `x-forwarded-proto: http|https` from the listener.
 * - N > 0: the peer is a trusted proxy. Its headers pass, and the peer's
 *   address is appended to x-forwarded-for.
 *
 * In both cases `:scheme` is set by the upstream connection (http for h2c,
 * https for TLS), never copied from the client: a backend reading `https`
 * must be able to believe it.
 */
import type { HeaderMap } from '../grpc/streams.ts';

/** Set by an L7 hop about the connection it received; from an untrusted client, they are lies or noise. */
const HOP_HEADERS: readonly string[] = ['forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-real-ip'];
const ENVOY_PREFIX = 'x-envoy-';

export function applyForwardedHeaders(headers: HeaderMap, peerAddress: string | undefined, tls: boolean, trustedHops: number): void {
  // Fields are removed by setting them undefined (which no one sends): a delete would turn the map into a slow dictionary.
  headers[':scheme'] = undefined;
  if (trustedHops === 0) {
    for (const name of HOP_HEADERS) if (headers[name] !== undefined) headers[name] = undefined;
    for (const name in headers) if (name.startsWith(ENVOY_PREFIX)) headers[name] = undefined;
    if (peerAddress !== undefined) headers['x-forwarded-for'] = peerAddress;
    headers['x-forwarded-proto'] = tls ? 'https' : 'http';
    return;
  }
  if (peerAddress === undefined) return;
  const previous = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = previous === undefined || previous === '' ? peerAddress : `${String(previous)}, ${peerAddress}`;
}
