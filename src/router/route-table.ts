/**
 * The route table: the first route whose match accepts an RPC's path and
 * headers decides what happens to it. Matching is synchronous and allocation-free.
 */
import type { HeaderMap } from '../grpc/streams.ts';
import type { HeaderMatchConfig, RouteConfig } from '../config/schema.ts';
import { compileRetryRules, type RetryRules } from '../resilience/retry-rules.ts';
import { RouteRateLimiter } from '../security/rate-limit.ts';

/** What to do with an RPC that matched a route. */
export type RouteAction =
  | { readonly kind: 'cluster'; readonly cluster: string }
  | { readonly kind: 'direct'; readonly code: number; readonly message: string };

export interface Route {
  /** The route's name, or `routes[i]` when it has none: used in logs and metrics. */
  readonly name: string;
  readonly action: RouteAction;
  /** Upper bound on the RPC deadline, ms; undefined: none. */
  readonly timeoutMs: number | undefined;
  /** Hard cap on stream lifetime, ms; undefined: none. */
  readonly maxStreamDurationMs: number | undefined;
  /** When failed attempts are retried. */
  readonly retry: RetryRules;
  /** The route's token buckets; undefined: no rate limit. Built with the table, so a reload refills them. */
  readonly rateLimit: RouteRateLimiter | undefined;
}

type PathPredicate = (path: string) => boolean;
type HeaderPredicate = (headers: HeaderMap) => boolean;

interface CompiledRoute {
  readonly route: Route;
  readonly path: PathPredicate;
  readonly headers: readonly HeaderPredicate[];
}

function pathPredicate(match: RouteConfig['match']): PathPredicate {
  if (match.method !== undefined) {
    const method = match.method;
    return (path) => path === method;
  }
  if (match.service !== undefined) {
    const prefix = `/${match.service}/`;
    return (path) => path.startsWith(prefix);
  }
  const prefix = match.prefix ?? '/';
  return (path) => path.startsWith(prefix);
}

function headerValue(headers: HeaderMap, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value === undefined ? undefined : String(value);
}

function headerPredicate(match: HeaderMatchConfig): HeaderPredicate {
  const { name, invert } = match;
  let test: (value: string | undefined) => boolean;
  if (match.present !== undefined) {
    const present = match.present;
    test = (value) => (value !== undefined) === present;
  } else if (match.exact !== undefined) {
    const exact = match.exact;
    test = (value) => value === exact;
  } else if (match.prefix !== undefined) {
    const prefix = match.prefix;
    test = (value) => value !== undefined && value.startsWith(prefix);
  } else {
    const regex = new RegExp(match.regex ?? '');
    test = (value) => value !== undefined && regex.test(value);
  }
  return (headers) => test(headerValue(headers, name)) !== invert;
}

function toRoute(config: RouteConfig, index: number): Route {
  const action: RouteAction = config.cluster !== undefined
    ? { kind: 'cluster', cluster: config.cluster }
    : { kind: 'direct', code: config.direct_response!.code, message: config.direct_response!.message };
  return {
    name: config.name ?? `routes[${index}]`,
    action,
    timeoutMs: config.timeout,
    maxStreamDurationMs: config.max_stream_duration,
    retry: compileRetryRules(config.retry_policy),
    rateLimit: config.rate_limit && new RouteRateLimiter(config.name ?? `routes[${index}]`, config.rate_limit),
  };
}

export class RouteTable {
  readonly #routes: readonly CompiledRoute[];

  constructor(routes: readonly RouteConfig[]) {
    this.#routes = routes.map((config, index) => ({
      route: toRoute(config, index),
      path: pathPredicate(config.match),
      headers: config.match.headers.map(headerPredicate),
    }));
  }

  /** The first route that matches, or undefined when none does. */
  match(path: string, headers: HeaderMap): Route | undefined {
    for (const compiled of this.#routes) {
      if (!compiled.path(path)) continue;
      let ok = true;
      for (const predicate of compiled.headers) {
        if (!predicate(headers)) { ok = false; break; }
      }
      if (ok) return compiled.route;
    }
    return undefined;
  }

  get routes(): readonly Route[] {
    return this.#routes.map((compiled) => compiled.route);
  }
}
