/**
 * The WebSocket route table: a request's Host picks a virtual host as the
 * gRPC router's does (exact name, longest `*.` wildcard, then `*`; routes
 * without `hosts` serve every host), then the first route of it whose path
 * matches (exact or prefix; the query string is not part of the path).
 */
import type { WebSocketRouteConfig } from '../config/websocket-schema.ts';
import { VirtualHostSelector } from '../router/virtual-hosts.ts';

export interface WebSocketRoute {
  /** The route's name, or `websocket.routes[i]`: logs and metrics. */
  readonly name: string;
  readonly config: WebSocketRouteConfig;
}

interface CompiledRoute extends WebSocketRoute {
  readonly exact: string | undefined;
  readonly prefix: string | undefined;
}

export class WebSocketRoutes {
  readonly #hosts = new VirtualHostSelector<CompiledRoute[]>();
  /** Routes without `hosts`, tried after a virtual host's own. */
  readonly #everyHost: CompiledRoute[] = [];
  readonly size: number;

  constructor(configs: readonly WebSocketRouteConfig[]) {
    this.size = configs.length;
    const byHosts = new Map<string, CompiledRoute[]>();
    const everyHost = this.#everyHost;
    configs.forEach((config, index) => {
      const route: CompiledRoute = { name: config.name ?? `websocket.routes[${index}]`, config, exact: config.match.path, prefix: config.match.prefix };
      const hosts = config.match.hosts;
      if (hosts === undefined) {
        everyHost.push(route);
        return;
      }
      const key = [...hosts].sort().join(',');
      const list = byHosts.get(key) ?? [];
      list.push(route);
      byHosts.set(key, list);
    });
    for (const [key, list] of byHosts) this.#hosts.add(key.split(','), list);
    // Routes for every host are also tried after a virtual host's own routes, in their order.
    if (everyHost.length > 0) this.#hosts.add(['*'], everyHost);
  }

  /** The route for `host` (the Host header or :authority, with or without a port) and `target` (path and query). */
  match(host: string | undefined, target: string): WebSocketRoute | undefined {
    const query = target.indexOf('?');
    const path = query < 0 ? target : target.slice(0, query);
    const routes = this.#hosts.select(host);
    const found = routes && firstMatch(routes, path);
    if (found || routes === this.#everyHost) return found;
    return firstMatch(this.#everyHost, path);
  }
}

function firstMatch(routes: readonly CompiledRoute[], path: string): CompiledRoute | undefined {
  for (const route of routes) {
    if (route.exact !== undefined ? path === route.exact : path.startsWith(route.prefix!)) return route;
  }
  return undefined;
}
