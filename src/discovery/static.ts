import { endpointKey, type DiscoveryListener, type DiscoverySource, type EndpointAddress } from './source.ts';

/** `[::1]` → `::1`: config authors write URL-style brackets; endpoint hosts are bare. */
export function unbracketHost(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * A fixed endpoint list. `start()` emits it once, synchronously, as a
 * `reset`; `refresh()` does nothing. Entries naming the same host and port
 * are merged with their weights summed, so consumers keyed by
 * `endpointKey()` see each endpoint once and the total share is kept.
 */
export class StaticDiscoverySource implements DiscoverySource {
  readonly #endpoints: readonly EndpointAddress[];
  #closed = false;

  constructor(endpoints: readonly EndpointAddress[]) {
    const merged = new Map<string, EndpointAddress>();
    for (const endpoint of endpoints) {
      const host = unbracketHost(endpoint.host);
      const key = endpointKey({ host, port: endpoint.port });
      const previous = merged.get(key);
      merged.set(key, { host, port: endpoint.port, weight: endpoint.weight + (previous?.weight ?? 0) });
    }
    this.#endpoints = Object.freeze([...merged.values()]);
  }

  start(listener: DiscoveryListener): void {
    if (!this.#closed) listener({ type: 'reset', endpoints: this.#endpoints });
  }

  refresh(): void {}

  close(): void {
    this.#closed = true;
  }
}
