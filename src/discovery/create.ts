import type { ClusterConfig } from '../config/schema.ts';
import { DnsDiscoverySource, type DnsSourceOptions } from './dns.ts';
import { KubernetesEndpointSliceSource } from './kubernetes.ts';
import type { DiscoverySource } from './source.ts';
import { StaticDiscoverySource } from './static.ts';

/**
 * The discovery source a cluster's config asks for: `dns`, `kubernetes` or
 * the static `endpoints` list. Not started yet. Throws if the config names
 * none (the schema rejects that, so it means a hand-built config) or has
 * invalid DNS servers. `dnsOptions` exists for tests.
 */
export function createDiscoverySource(cluster: ClusterConfig, dnsOptions?: DnsSourceOptions): DiscoverySource {
  if (cluster.dns) return new DnsDiscoverySource(cluster.dns, dnsOptions);
  if (cluster.kubernetes) {
    const { namespace, service, port, kubeconfig } = cluster.kubernetes;
    return new KubernetesEndpointSliceSource({ namespace, service, port, kubeconfigPath: kubeconfig });
  }
  if (cluster.endpoints) {
    return new StaticDiscoverySource(cluster.endpoints.map((e) => ({ host: e.address, port: e.port, weight: e.weight })));
  }
  // A hand-written `eds`: only the xDS client (src/xds/client/) can feed one.
  if (cluster.eds) throw new Error(`cluster "${cluster.name}": eds endpoints come from an xDS control plane; use endpoints, dns or kubernetes`);
  throw new Error(`cluster "${cluster.name}" has no endpoints, dns or kubernetes`);
}
