import type { ClusterConfig } from '../config/schema.ts';
import { DnsDiscoverySource, type DnsSourceOptions } from './dns.ts';
import type { DiscoverySource } from './source.ts';
import { StaticDiscoverySource } from './static.ts';

/**
 * The discovery source a cluster's config asks for: `dns` or the static
 * `endpoints` list. Not started yet. Throws if the config names neither (the
 * schema rejects that, so it means a hand-built config) or has invalid DNS
 * servers. `dnsOptions` exists for tests.
 */
export function createDiscoverySource(cluster: ClusterConfig, dnsOptions?: DnsSourceOptions): DiscoverySource {
  if (cluster.dns) return new DnsDiscoverySource(cluster.dns, dnsOptions);
  if (cluster.endpoints) {
    return new StaticDiscoverySource(cluster.endpoints.map((e) => ({ host: e.address, port: e.port, weight: e.weight })));
  }
  throw new Error(`cluster "${cluster.name}" has neither endpoints nor dns`);
}
