/**
 * The route table: the first route whose match accepts an RPC's path and
 * headers decides what happens to it. Routes with `match.hosts` form virtual
 * hosts: the RPC's :authority picks one (src/router/virtual-hosts.ts), and
 * only its routes are tried, in order. A route with weighted_clusters picks
 * its cluster per RPC (src/router/weighted-picker.ts). Matching is synchronous
 * and allocation-free.
 */
import type { HeaderMap } from '../grpc/streams.ts';
import type { HeaderMatchConfig, RouteConfig } from '../config/schema.ts';
import { compileRetryRules, type RetryRules } from '../resilience/retry-rules.ts';
import { RouteRateLimiter } from '../security/rate-limit.ts';
import { compileHeaderEdit, type HeaderEdit } from './header-edit.ts';
import { VirtualHostSelector } from './virtual-hosts.ts';
import { WeightedPicker } from './weighted-picker.ts';

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
  /** Edits to the headers sent upstream; undefined: none. */
  readonly requestHeaders: HeaderEdit | undefined;
  /** Edits to the response headers sent to the client; undefined: none. */
  readonly responseHeaders: HeaderEdit | undefined;
  /** The route's browser protocol settings (src/web/ reads them); undefined: the listener's. */
  readonly web: RouteConfig['web'];
}

type PathPredicate = (path: string) => boolean;
type HeaderPredicate = (headers: HeaderMap) => boolean;

interface CompiledRoute {
  readonly route: Route;
  /** Set for weighted_clusters: one Route per cluster with a weight, picked per RPC. */
  readonly picker: WeightedPicker<Route> | undefined;
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
  if (match.path_regex !== undefined) {
    const regex = new RegExp(`^(?:${match.path_regex})$`);
    return (path) => regex.test(path);
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
  const action: RouteAction = config.direct_response !== undefined
    ? { kind: 'direct', code: config.direct_response.code, message: config.direct_response.message }
    : { kind: 'cluster', cluster: config.cluster ?? config.weighted_clusters!.find((entry) => entry.weight > 0)!.cluster };
  return {
    name: config.name ?? `routes[${index}]`,
    action,
    timeoutMs: config.timeout,
    maxStreamDurationMs: config.max_stream_duration,
    retry: compileRetryRules(config.retry_policy),
    rateLimit: config.rate_limit && new RouteRateLimiter(config.name ?? `routes[${index}]`, config.rate_limit),
    requestHeaders: compileHeaderEdit(config.request_headers),
    responseHeaders: compileHeaderEdit(config.response_headers),
    web: config.web,
  };
}

function compile(config: RouteConfig, index: number): CompiledRoute {
  const route = toRoute(config, index);
  const weighted = config.weighted_clusters;
  return {
    route,
    // Every share is the same route but for its cluster: limits and buckets are the route's, shared.
    picker: weighted && new WeightedPicker(weighted.map((entry) => [{ ...route, action: { kind: 'cluster', cluster: entry.cluster } }, entry.weight] as const)),
    path: pathPredicate(config.match),
    headers: config.match.headers.map(headerPredicate),
  };
}

export class RouteTable {
  readonly #routes: readonly CompiledRoute[];
  /** Undefined while no route names hosts: every route serves every authority. */
  readonly #hosts: VirtualHostSelector<readonly CompiledRoute[]> | undefined;

  constructor(routes: readonly RouteConfig[]) {
    this.#routes = routes.map(compile);
    if (routes.some((config) => config.match.hosts !== undefined)) {
      // Routes with the same host list form one virtual host, in the order they first appear.
      const groups = new Map<string, { patterns: readonly string[]; routes: CompiledRoute[] }>();
      routes.forEach((config, index) => {
        const patterns = config.match.hosts ?? ['*'];
        const key = patterns.join(' ');
        let group = groups.get(key);
        if (!group) groups.set(key, (group = { patterns, routes: [] }));
        group.routes.push(this.#routes[index]!);
      });
      this.#hosts = new VirtualHostSelector();
      for (const group of groups.values()) this.#hosts.add(group.patterns, group.routes);
    }
  }

  /** The first route that matches, or undefined when none does; a weighted route picks its cluster for this RPC. */
  match(path: string, headers: HeaderMap): Route | undefined {
    const compiled = this.#first(path, headers);
    return compiled === undefined ? undefined : compiled.picker === undefined ? compiled.route : compiled.picker.pick();
  }

  /** The route match() would take, without picking a cluster: for settings that do not depend on the cluster. */
  find(path: string, headers: HeaderMap): Route | undefined {
    return this.#first(path, headers)?.route;
  }

  #first(path: string, headers: HeaderMap): CompiledRoute | undefined {
    const candidates = this.#hosts === undefined ? this.#routes : this.#hosts.select(authorityOf(headers));
    if (candidates === undefined) return undefined;
    for (const compiled of candidates) {
      if (!compiled.path(path)) continue;
      let ok = true;
      for (const predicate of compiled.headers) {
        if (!predicate(headers)) { ok = false; break; }
      }
      if (ok) return compiled;
    }
    return undefined;
  }

  get routes(): readonly Route[] {
    return this.#routes.map((compiled) => compiled.route);
  }
}

/** The request's :authority (HTTP/2), else its Host header. */
function authorityOf(headers: HeaderMap): string | undefined {
  const value = headers[':authority'] ?? headers.host;
  return typeof value === 'string' ? value : Array.isArray(value) ? value[0] : undefined;
}
