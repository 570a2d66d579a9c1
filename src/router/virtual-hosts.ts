/**
 * Choosing a virtual host by :authority, as Envoy does: an exact name first,
 * then the longest `*.suffix` wildcard that matches, then `*`. A request's
 * authority is compared without its port and case-insensitively. A wildcard
 * `*.example.com` matches `a.example.com` and `a.b.example.com`, never
 * `example.com` (Envoy's and the Gateway API's rule alike).
 */

export class VirtualHostSelector<T> {
  readonly #exact = new Map<string, T>();
  /** Longest suffix first; each suffix keeps its leading dot (`.example.com`). */
  readonly #wildcards: (readonly [suffix: string, host: T])[] = [];
  #any: T | undefined;

  /** `patterns` are lower-case; a pattern already taken by an earlier host stays with it. */
  add(patterns: readonly string[], host: T): void {
    for (const pattern of patterns) {
      if (pattern === '*') this.#any ??= host;
      else if (pattern.startsWith('*.')) {
        const suffix = pattern.slice(1);
        if (!this.#wildcards.some(([known]) => known === suffix)) this.#wildcards.push([suffix, host]);
      } else if (!this.#exact.has(pattern)) this.#exact.set(pattern, host);
    }
    this.#wildcards.sort((a, b) => b[0].length - a[0].length);
  }

  /** The host for `authority` (`name` or `name:port`, `[v6]:port`), or undefined when none serves it. */
  select(authority: string | undefined): T | undefined {
    if (authority === undefined) return this.#any;
    const name = hostOf(authority);
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    for (const [suffix, host] of this.#wildcards) {
      if (name.length > suffix.length && name.endsWith(suffix)) return host;
    }
    return this.#any;
  }
}

/** The authority without its port, lower-cased. */
export function hostOf(authority: string): string {
  let end = authority.length;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    end = close === -1 ? end : close + 1;
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1) end = colon;
  }
  const host = authority.slice(0, end);
  return host === host.toLowerCase() ? host : host.toLowerCase();
}
