/**
 * The request fields a backend receives for an upgrade or a forwarded
 * request: the client's, less what belongs to the client's connection
 * (hop-by-hop fields, those its Connection field names, HTTP/2 pseudo-fields)
 * and the proxy's own affinity cookie, with the Host the client asked for and
 * the forwarding fields the listener's trust allows (src/security/forwarded-headers.ts).
 */
import type { HeaderMap } from '../grpc/streams.ts';
import { applyForwardedHeaders } from '../security/forwarded-headers.ts';
import type { RequestHeaders } from './handshake.ts';
import type { WebSocketRoute } from './routes.ts';

const HOP_BY_HOP = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'http2-settings', 'host', 'sec-websocket-key', 'sec-websocket-version']);

export interface ClientFacts {
  readonly headers: RequestHeaders;
  /** Host, or :authority over HTTP/2. */
  readonly host: string | undefined;
  readonly ip: string;
  readonly tls: boolean;
}

/** `trustedHops`: the listener's trusted_proxy_hops. */
export function upstreamRequestHeaders(client: ClientFacts, route: WebSocketRoute, trustedHops: number): Record<string, string | string[]> {
  const named = new Set(connectionTokens(client.headers['connection']));
  const map: HeaderMap = {};
  for (const [name, value] of Object.entries(client.headers)) {
    if (value === undefined || name.startsWith(':') || HOP_BY_HOP.has(name) || named.has(name)) continue;
    map[name] = typeof value === 'number' ? String(value) : value;
  }
  const cookieName = route.config.affinity?.cookie.name;
  if (map['cookie'] !== undefined) {
    const cookies = withoutCookie(map['cookie'] as string | string[], cookieName);
    map['cookie'] = cookies === '' ? undefined : cookies;
  }
  if (client.host !== undefined) map['host'] = client.host;
  applyForwardedHeaders(map, client.ip, client.tls, trustedHops);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(map)) {
    if (value !== undefined && !name.startsWith(':')) out[name] = typeof value === 'number' ? String(value) : value;
  }
  return out;
}

function connectionTokens(value: RequestHeaders[string]): string[] {
  if (value === undefined) return [];
  const text = Array.isArray(value) ? value.join(',') : String(value);
  return text.split(',').map((token) => token.trim().toLowerCase()).filter((token) => token !== '');
}

/** The Cookie field(s) as one field, without the pair named `name` (the proxy's, which the backend has no use for). */
function withoutCookie(value: string | string[], name: string | undefined): string {
  const pairs = (Array.isArray(value) ? value : [value]).flatMap((field) => field.split(';')).map((pair) => pair.trim()).filter((pair) => pair !== '');
  return pairs.filter((pair) => {
    const equals = pair.indexOf('=');
    return name === undefined || equals < 0 || pair.slice(0, equals).trim() !== name;
  }).join('; ');
}
