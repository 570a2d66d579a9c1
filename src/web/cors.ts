/**
 * CORS for browser calls from pages of other origins (the Fetch standard's
 * CORS protocol): the proxy answers preflights itself, and adds the
 * Access-Control headers to every response of an allowed origin, error
 * responses included, so a page can read `grpc-status` whatever happened.
 * A request from an origin the policy does not allow is still served (the
 * browser, not the proxy, keeps the page from reading the answer), as
 * Envoy's CORS filter does; its preflight is refused.
 */
import type { CorsPolicyConfig } from '../config/web-schema.ts';
import type { HeaderMap } from '../grpc/streams.ts';

export interface PreflightAnswer {
  readonly status: number;
  readonly headers: HeaderMap;
  /** Why it was refused, for the body; empty when allowed. */
  readonly refusal: string;
}

export class CorsPolicy {
  readonly #anyOrigin: boolean;
  readonly #origins: ReadonlySet<string>;
  /** `https://*.example.com` as [`https://`, `.example.com`, port suffix]. */
  readonly #wildcards: readonly { readonly scheme: string; readonly suffix: string }[];
  readonly #methods: ReadonlySet<string>;
  readonly #headers: ReadonlySet<string>;
  readonly #allowMethods: string;
  readonly #allowHeaders: string;
  readonly #exposeHeaders: string;
  readonly #maxAge: string;
  readonly #credentials: boolean;

  constructor(config: CorsPolicyConfig) {
    this.#anyOrigin = config.allow_origins.includes('*');
    this.#origins = new Set(config.allow_origins.filter((origin) => !origin.includes('*')));
    this.#wildcards = config.allow_origins.filter((origin) => origin.includes('://*.')).map((origin) => {
      const [scheme, rest] = origin.split('://*');
      return { scheme: `${scheme}://`, suffix: rest! };
    });
    this.#methods = new Set(config.allow_methods);
    this.#headers = new Set(config.allow_headers);
    this.#allowMethods = config.allow_methods.join(', ');
    this.#allowHeaders = config.allow_headers.join(', ');
    this.#exposeHeaders = config.expose_headers.join(', ');
    this.#maxAge = String(Math.floor(config.max_age / 1000));
    this.#credentials = config.allow_credentials;
  }

  allowsOrigin(origin: string): boolean {
    if (this.#anyOrigin) return true;
    const lower = origin.toLowerCase();
    if (this.#origins.has(lower)) return true;
    for (const { scheme, suffix } of this.#wildcards) {
      // `https://*.example.com` takes `https://a.example.com`, not `https://example.com` nor another scheme.
      if (lower.startsWith(scheme) && lower.endsWith(suffix) && lower.length > scheme.length + suffix.length && !lower.slice(scheme.length, -suffix.length).includes('/')) return true;
    }
    return false;
  }

  /** The headers to add to a response for `origin`; undefined when the origin is not allowed. */
  responseHeaders(origin: string): Record<string, string> | undefined {
    if (!this.allowsOrigin(origin)) return undefined;
    const headers: Record<string, string> = {
      'access-control-allow-origin': this.#anyOrigin && !this.#credentials ? '*' : origin,
      'access-control-expose-headers': this.#exposeHeaders,
    };
    // A cache must not give one origin's answer to another.
    if (headers['access-control-allow-origin'] !== '*') headers.vary = 'origin';
    if (this.#credentials) headers['access-control-allow-credentials'] = 'true';
    return headers;
  }

  /** The answer to a preflight (OPTIONS with Origin and Access-Control-Request-Method). */
  preflight(origin: string, method: string, requestHeaders: string | undefined): PreflightAnswer {
    const refuse = (refusal: string): PreflightAnswer => ({ status: 403, headers: { vary: 'origin, access-control-request-method, access-control-request-headers' }, refusal });
    if (!this.allowsOrigin(origin)) return refuse(`origin ${origin} is not allowed`);
    if (!this.#methods.has(method)) return refuse(`method ${method} is not allowed (${this.#allowMethods})`);
    // A browser lists only headers that need asking for (a safelisted value is not listed), so each must be allowed.
    for (const name of (requestHeaders ?? '').split(',')) {
      const header = name.trim().toLowerCase();
      if (header !== '' && !this.#headers.has(header)) return refuse(`request header ${header} is not allowed (${this.#allowHeaders})`);
    }
    const headers: HeaderMap = {
      'access-control-allow-origin': this.#anyOrigin && !this.#credentials ? '*' : origin,
      'access-control-allow-methods': this.#allowMethods,
      'access-control-allow-headers': this.#allowHeaders,
      'access-control-max-age': this.#maxAge,
      vary: 'origin, access-control-request-method, access-control-request-headers',
    };
    if (this.#credentials) headers['access-control-allow-credentials'] = 'true';
    return { status: 204, headers, refusal: '' };
  }
}

const COMPILED = new WeakMap<CorsPolicyConfig, CorsPolicy>();

/** The policy of a config object, compiled once (a reload brings new objects, and so new policies). */
export function corsPolicy(config: CorsPolicyConfig): CorsPolicy {
  let policy = COMPILED.get(config);
  if (!policy) COMPILED.set(config, (policy = new CorsPolicy(config)));
  return policy;
}
