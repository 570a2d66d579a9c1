/**
 * Cookie affinity for WebSocket sessions: the cookie names the endpoint a
 * session was placed on, so a reconnect lands there again.
 *
 * The value never carries an address. An endpoint's id is an HMAC of its
 * cluster and address under the configured key (opaque to anyone without the
 * key, and the same on every replica and after a reload), and the value is
 * that id with an HMAC of its own, so the proxy can tell a cookie it issued
 * (whose endpoint may since have gone) from one that was forged or altered:
 *
 *     <id: 12 bytes, base64url> "." <signature: 16 bytes, base64url>
 *
 * Ids are kept per endpoint object, so they go with the endpoints.
 */
import { cryptoModule } from '../builtins.ts';
import type { WebSocketRouteConfig } from '../config/websocket-schema.ts';

const ID_BYTES = 12;
const SIGNATURE_BYTES = 16;

/** How a request's cookie was read. */
export type CookieReading =
  | { readonly kind: 'absent' }
  /** Not one this key signed: altered, forged, or signed with an older key. */
  | { readonly kind: 'tampered' }
  | { readonly kind: 'valid'; readonly id: string };

export class AffinityKey {
  readonly #key: Buffer;
  readonly #ids = new WeakMap<object, string>();

  constructor(key: Buffer) {
    this.#key = key;
  }

  /** Same key material: cookies signed by one verify with the other. */
  sameAs(key: Buffer): boolean {
    return this.#key.equals(key);
  }

  /** The opaque id of `endpoint` (an address, `host:port`) of `cluster`; cached on the endpoint object. */
  endpointId(cluster: string, endpoint: { readonly key: string }): string {
    let id = this.#ids.get(endpoint);
    if (id === undefined) {
      id = this.#mac(`endpoint\0${cluster}\0${endpoint.key}`).subarray(0, ID_BYTES).toString('base64url');
      this.#ids.set(endpoint, id);
    }
    return id;
  }

  /** The cookie value naming `id`. */
  valueFor(cluster: string, id: string): string {
    return `${id}.${this.#signature(cluster, id).toString('base64url')}`;
  }

  /** Reads a value: the endpoint id it names when this key signed it for `cluster`. */
  read(cluster: string, value: string | undefined): CookieReading {
    if (value === undefined) return { kind: 'absent' };
    const dot = value.indexOf('.');
    if (dot < 0) return { kind: 'tampered' };
    const id = value.slice(0, dot);
    const given = Buffer.from(value.slice(dot + 1), 'base64url');
    const expected = this.#signature(cluster, id);
    if (given.length !== expected.length || !cryptoModule().timingSafeEqual(given, expected)) return { kind: 'tampered' };
    return { kind: 'valid', id };
  }

  #signature(cluster: string, id: string): Buffer {
    return this.#mac(`cookie\0${cluster}\0${id}`).subarray(0, SIGNATURE_BYTES);
  }

  #mac(text: string): Buffer {
    return cryptoModule().createHmac('sha256', this.#key).update(text).digest();
  }
}

/** The value of cookie `name` in a request's Cookie header(s) (HTTP/2 may send several fields). */
export function cookieValue(header: string | string[] | number | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const fields = Array.isArray(header) ? header : [String(header)];
  for (const field of fields) {
    for (const pair of field.split(';')) {
      const equals = pair.indexOf('=');
      if (equals < 0 || pair.slice(0, equals).trim() !== name) continue;
      const value = pair.slice(equals + 1).trim();
      // RFC 6265 allows the value in double quotes.
      return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
    }
  }
  return undefined;
}

/** The Set-Cookie field for `value` with the route's attributes. */
export function setCookie(settings: NonNullable<WebSocketRouteConfig['affinity']>['cookie'], value: string): string {
  const parts = [`${settings.name}=${value}`, `Path=${settings.path}`];
  if (settings.domain !== undefined) parts.push(`Domain=${settings.domain}`);
  if (settings.max_age !== undefined) parts.push(`Max-Age=${Math.max(1, Math.floor(settings.max_age / 1000))}`);
  parts.push(`SameSite=${settings.same_site}`);
  if (settings.secure) parts.push('Secure');
  if (settings.http_only) parts.push('HttpOnly');
  return parts.join('; ');
}
