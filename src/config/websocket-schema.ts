/**
 * Config of WebSocket through Switchyard (docs/websocket.md): the top-level
 * `websocket` section (routes from host and path to a cluster, with their
 * origins, timeouts, frame limits and affinity cookie) and each listener's
 * `websocket` block (RFC 8441 over HTTP/2, connection caps). Composed into
 * src/config/schema.ts.
 */
import { z } from 'zod';
import { duration, hostPattern } from './schema-primitives.ts';

const durationOrOff = z.union([z.literal('off'), duration]);
const positiveInt = (max: number) => z.number().int().min(1).max(max);

/** RFC 6265 §4.1.1: a cookie name is a token. */
const COOKIE_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Cookie attribute values may not hold `;`, control characters or spaces. */
const COOKIE_ATTRIBUTE = /^[\x21-\x3a\x3c-\x7e]+$/;
/** An origin as browsers send it: scheme, host, optional port; no path. */
const ORIGIN = /^(https?):\/\/[^/\s?#]+$/i;

const pathMatch = z
  .strictObject({
    /** Exactly this path (the query string is not part of it). */
    path: z.string().startsWith('/', 'expected a path starting with "/"').optional(),
    /** Any path starting with this. */
    prefix: z.string().startsWith('/', 'expected a path prefix starting with "/"').optional(),
    /** The Host (without its port) this route serves: `chat.example.com`, `*.example.com` or `*`. Unset: every host. */
    hosts: z.array(hostPattern).min(1).optional(),
  })
  .superRefine((value, ctx) => {
    if ((value.path === undefined) === (value.prefix === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'a WebSocket route match needs exactly one of path (exact) or prefix' });
    }
  });

const affinityCookie = z.strictObject({
  name: z.string().regex(COOKIE_NAME, 'expected a cookie name (letters, digits and !#$%&\'*+-.^_`|~)').default('switchyard-affinity'),
  path: z.string().startsWith('/').regex(COOKIE_ATTRIBUTE, 'no spaces, ";" or control characters').default('/'),
  domain: z.string().regex(COOKIE_ATTRIBUTE, 'no spaces, ";" or control characters').optional(),
  same_site: z.enum(['Strict', 'Lax', 'None']).default('Lax'),
  secure: z.boolean().default(true),
  http_only: z.boolean().default(true),
  /** How long the browser keeps it. Unset: a session cookie. */
  max_age: duration.optional(),
});

const affinity = z
  .strictObject({
    cookie: affinityCookie.prefault({}),
    /**
     * A cookie naming an endpoint that is gone, unhealthy or ejected: false (default) picks a live
     * one and sets a new cookie; true answers 503, for applications that must not lose a session's place.
     */
    strict: z.boolean().default(false),
  })
  .superRefine((value, ctx) => {
    // Browsers drop a SameSite=None cookie without Secure.
    if (value.cookie.same_site === 'None' && !value.cookie.secure) ctx.addIssue({ code: 'custom', path: ['cookie', 'secure'], message: 'same_site: None needs secure: true (browsers drop it otherwise)' });
  });

export const websocketRoute = z
  .strictObject({
    name: z.string().min(1).optional(),
    match: pathMatch,
    cluster: z.string().min(1),
    /** WebSocket upgrades on this route; false refuses them (403). */
    upgrades: z.boolean().default(true),
    /** Plain HTTP/1.1 requests on this route (a page, a long-poll fallback) are forwarded to the cluster too. Off: 426. */
    forward_requests: z.boolean().default(false),
    /** Origins a browser may open a session from (`https://chat.example.com`); others get 403. Unset: any. */
    allowed_origins: z.array(z.string().regex(ORIGIN, 'expected an origin such as "https://chat.example.com"').transform((origin) => origin.toLowerCase())).min(1).optional(),
    /** No data or ping frame either way for this long: both sides get close 1001. Not an RPC timeout. */
    idle_timeout: duration.default(3_600_000),
    /** Sessions older than this (±10%) are closed with 1001 so clients reconnect elsewhere. Unset: never. */
    max_connection_age: duration.optional(),
    /** The proxy pings a client that has sent nothing for this long… */
    ping_interval: durationOrOff.default(30_000),
    /** …and one that then sends nothing for this long more is gone: the backend gets close 1001. */
    ping_timeout: duration.default(20_000),
    /** After the proxy sends a close frame, the peers have this long to answer before the connections are closed. */
    close_timeout: duration.default(5_000),
    /** The backend must answer the upgrade within this (504 otherwise). */
    handshake_timeout: duration.default(10_000),
    /** Largest frame either side may send; beyond it the sender gets close 1009 before the payload is read. */
    max_frame_bytes: positiveInt(2 ** 53 - 1).default(16 << 20),
    /** Largest message (all of its fragments) either side may send. */
    max_message_bytes: positiveInt(2 ** 53 - 1).default(16 << 20),
    /** Most frames one message may be split into (1008 beyond). */
    max_fragments: positiveInt(1_000_000).default(1024),
    /** Cookie affinity: a reconnect reaches the endpoint its cookie names (docs/websocket.md). */
    affinity: affinity.optional(),
  })
  .superRefine((value, ctx) => {
    if (value.max_frame_bytes > value.max_message_bytes) ctx.addIssue({ code: 'custom', path: ['max_frame_bytes'], message: `max_frame_bytes (${value.max_frame_bytes}) cannot exceed max_message_bytes (${value.max_message_bytes})` });
    if (!value.upgrades && !value.forward_requests) ctx.addIssue({ code: 'custom', path: ['upgrades'], message: 'a route with upgrades: false must forward_requests: true, or it serves nothing' });
  });

export const websocketSettings = z
  .strictObject({
    /** The key that signs affinity cookies (HMAC-SHA256): a file of 32 bytes or more, read at load and on reload. */
    affinity_key_file: z.string().min(1).optional(),
    /** Matched in order, first match wins; routes are chosen by Host and path only. */
    routes: z.array(websocketRoute).default([]),
  })
  .superRefine((value, ctx) => {
    if (value.affinity_key_file !== undefined) return;
    value.routes.forEach((route, i) => {
      if (route.affinity) ctx.addIssue({ code: 'custom', path: ['routes', i, 'affinity'], message: 'cookie affinity needs websocket.affinity_key_file, the key that signs the cookies' });
    });
  });

/** A listener's `websocket` block. */
export const listenerWebSocketFields = {
  websocket: z
    .strictObject({
      /** WebSocket over HTTP/2 (RFC 8441): the listener announces SETTINGS_ENABLE_CONNECT_PROTOCOL. */
      over_http2: z.boolean().default(true),
      /** Open WebSocket sessions on this listener; upgrades beyond get 503. Unset: only the listener's max_connections bounds them. */
      max_connections: positiveInt(10_000_000).optional(),
      /** Open WebSocket sessions from one client address (the TCP peer); beyond, 503. Unset: no cap. */
      max_connections_per_ip: positiveInt(10_000_000).optional(),
    })
    .prefault({}),
};

export type WebSocketSettings = z.output<typeof websocketSettings>;
export type WebSocketRouteConfig = WebSocketSettings['routes'][number];

/** Each WebSocket route's cluster must exist (with xDS the clusters come later, and are not checked here). */
export function checkWebSocketReferences(value: Record<string, unknown>, known: ReadonlySet<string | undefined>, ctx: z.RefinementCtx): void {
  const section = value.websocket;
  if (typeof section !== 'object' || section === null || value.xds !== undefined) return;
  const routes = (section as { routes?: unknown }).routes;
  if (!Array.isArray(routes)) return;
  routes.forEach((route: unknown, i) => {
    const cluster = typeof route === 'object' && route !== null ? (route as { cluster?: unknown }).cluster : undefined;
    if (typeof cluster === 'string' && !known.has(cluster)) {
      ctx.addIssue({ code: 'custom', path: ['websocket', 'routes', i, 'cluster'], message: `no cluster named "${cluster}" (clusters: ${[...known].join(', ') || 'none'})` });
    }
  });
}
