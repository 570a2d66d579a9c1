/**
 * Browser protocols (docs/grpc-web.md): which of gRPC-Web and Connect a
 * listener or a route takes, the CORS policy browsers on other origins are
 * held to, and the descriptor sets Connect's JSON bodies are transcoded with.
 * Off unless asked for: a listener that sets nothing answers these requests as
 * it always did (HTTP 415).
 */
import { z } from 'zod';
import { duration } from './schema-primitives.ts';

/** The protocols the proxy bridges to gRPC backends. */
export const WEB_PROTOCOLS = ['grpc_web', 'connect'] as const;
export type WebProtocolName = (typeof WEB_PROTOCOLS)[number];

/** What browsers may send beside the simple headers: the gRPC-Web and Connect clients' own headers. */
export const DEFAULT_CORS_ALLOW_HEADERS = ['content-type', 'x-grpc-web', 'x-user-agent', 'grpc-timeout', 'connect-protocol-version', 'connect-timeout-ms'] as const;
/** What a page may read of a response: the status a gRPC-Web client needs when it comes as headers. */
export const DEFAULT_CORS_EXPOSE_HEADERS = ['grpc-status', 'grpc-message', 'grpc-status-details-bin'] as const;

const headerName = z.string().min(1).transform((name) => name.toLowerCase()).pipe(z.string().regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, 'expected an HTTP header name'));

/** `https://app.example.com`, `https://*.example.com` (any subdomain), or `*` (any origin). */
const ORIGIN_PATTERN = /^(\*|[a-z][a-z0-9+.-]*:\/\/(\*\.)?[a-z0-9_.-]+(:\d{1,5})?)$/;
const origin = z.string().transform((text) => text.toLowerCase().replace(/\/$/, ''))
  .pipe(z.string().regex(ORIGIN_PATTERN, 'expected an origin such as "https://app.example.com", "https://*.example.com" or "*" (scheme and host, no path)'));

const corsPolicy = z
  .strictObject({
    /** Origins whose pages may call: exact origins, `https://*.example.com`, or `*`. */
    allow_origins: z.array(origin).min(1),
    /** Methods a preflight may ask for: POST for every call, GET for Connect's GET. */
    allow_methods: z.array(z.enum(['POST', 'GET'])).min(1).default(['POST', 'GET']),
    /** Request headers a page may send (the whole list: add custom metadata such as `authorization` to it). */
    allow_headers: z.array(headerName).default([...DEFAULT_CORS_ALLOW_HEADERS]),
    /** Response headers a page may read, on every response, errors included. */
    expose_headers: z.array(headerName).default([...DEFAULT_CORS_EXPOSE_HEADERS]),
    /** How long a browser may cache a preflight's answer (Access-Control-Max-Age, whole seconds). */
    max_age: duration.default(600_000),
    /** Let pages send cookies and HTTP authentication (Access-Control-Allow-Credentials). */
    allow_credentials: z.boolean().default(false),
  })
  .superRefine((value, ctx) => {
    // Browsers refuse a wildcard origin on a credentialed request; the proxy would then answer with one no browser accepts.
    if (value.allow_credentials && value.allow_origins.includes('*')) {
      ctx.addIssue({ code: 'custom', path: ['allow_credentials'], message: 'allow_credentials needs the origins listed: browsers refuse credentials with allow_origins "*"' });
    }
  });

export type CorsPolicyConfig = z.output<typeof corsPolicy>;

const protocols = z.array(z.enum(WEB_PROTOCOLS)).refine((list) => new Set(list).size === list.length, 'a protocol is listed twice');

/** `listeners[].web`: the browser protocols every route on the listener takes, and their CORS policy. */
export const listenerWebSettings = z.strictObject({
  protocols: protocols.default([]),
  /** The CORS policy of routes that set none of their own. Unset: no CORS headers, preflights refused. */
  cors: corsPolicy.optional(),
});

/** `routes[].web`: overrides the listener's, field by field. */
export const routeWebSettings = z.strictObject({
  /** Unset: the listener's. `[]` turns them off on this route. */
  protocols: protocols.optional(),
  cors: corsPolicy.optional(),
});

export type RouteWebConfig = z.output<typeof routeWebSettings>;
export type ListenerWebConfig = z.output<typeof listenerWebSettings>;

/** The top-level `web` section: what all listeners share. */
export const webSettings = z.strictObject({
  /**
   * FileDescriptorSet files (`buf build -o api.binpb`, `protoc --include_imports --descriptor_set_out`):
   * with them, Connect JSON bodies are transcoded to and from the binary form gRPC backends speak.
   */
  descriptor_sets: z.array(z.string().min(1)).default([]),
});

export type WebSettings = z.output<typeof webSettings>;
