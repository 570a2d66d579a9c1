/**
 * Gateway API hostnames: exact names and `*.suffix` wildcards (a wildcard
 * matches one or more labels in front of the suffix, never the suffix
 * itself). Names compare case-insensitively; everything here is lower case.
 */

/** The listener's and the route's hostnames as they apply together; undefined stands for "any". */
export function intersect(listener: string | undefined, route: string | undefined): string | undefined | null {
  if (listener === undefined) return route;
  if (route === undefined) return listener;
  if (listener === route) return listener;
  if (covers(listener, route)) return route;
  if (covers(route, listener)) return listener;
  return null;
}

/**
 * The hostnames a route serves on a listener: each route hostname intersected
 * with the listener's; `['*']` when neither names one. Empty when they do not
 * intersect (the route does not attach).
 */
export function effectiveHostnames(listener: string | undefined, routeHostnames: readonly string[] | undefined): string[] {
  const lowered = listener?.toLowerCase();
  if (!routeHostnames || routeHostnames.length === 0) return [lowered ?? '*'];
  const result = new Set<string>();
  for (const hostname of routeHostnames) {
    const joined = intersect(lowered, hostname.toLowerCase());
    if (joined !== null) result.add(joined ?? '*');
  }
  return [...result];
}

/** True when every name `specific` matches is also matched by `general` (both patterns, `*` for any). */
export function covers(general: string, specific: string): boolean {
  if (general === '*' || general === specific) return true;
  if (!general.startsWith('*.')) return false;
  const suffix = general.slice(1);
  return specific.length > suffix.length && specific.endsWith(suffix);
}

/** Two patterns match at least one name in common. */
export function overlap(a: string, b: string): boolean {
  return covers(a, b) || covers(b, a);
}

/** Precedence keys: characters of a non-wildcard hostname, then of any hostname (`*` counts 0). */
export function hostnameRank(hostname: string): readonly [number, number] {
  if (hostname === '*') return [0, 0];
  return [hostname.startsWith('*') ? 0 : hostname.length, hostname.length];
}
