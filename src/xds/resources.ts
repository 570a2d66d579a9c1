/**
 * Envoy v3 resources from Switchyard's own terms. What a control plane
 * serves is a set of named resources of four types: Listener (the name a
 * client dials, e.g. `xds:///echo`, and the route table it uses), Route
 * Configuration, Cluster (how to balance), and ClusterLoadAssignment (the
 * endpoints). Proxyless gRPC clients need exactly this shape: an
 * api_listener holding an HttpConnectionManager with the router filter,
 * routes fetched by RDS, EDS clusters, and every locality given a weight
 * (gRPC drops a locality without one).
 */
import type { EndpointAddress } from '../discovery/source.ts';
import { policyDefinition, type PolicyName } from '../balancer/registry.ts';
import { HTTP_CONNECTION_MANAGER_TYPE_URL, packAny, ROUTER_TYPE_URL, TYPE_URL, type AnyMessage } from './protos.ts';

/** Balancing as Switchyard names it; see clusterResource for how each is sent. */
/** Switchyard's policy names (src/balancer/registry.ts), as a cluster spec carries them. */
export type XdsLbPolicy = PolicyName;

export interface XdsListenerSpec {
  /** The name clients dial: `xds:///<name>`. */
  readonly name: string;
  readonly routeConfig: string;
}

export interface XdsRouteSpec {
  /** Exactly one of path (an exact `/pkg.Service/Method`) and prefix. */
  readonly path?: string | undefined;
  readonly prefix?: string | undefined;
  readonly cluster: string;
  /** Caps each RPC's deadline (sent as max_stream_duration.grpc_timeout_header_max, which gRPC clients honour). */
  readonly timeoutMs?: number | undefined;
  /** ring_hash: the request header whose value is hashed. */
  readonly hashHeader?: string | undefined;
}

export interface XdsRouteConfigSpec {
  readonly name: string;
  readonly routes: readonly XdsRouteSpec[];
}

export interface XdsClusterSpec {
  readonly name: string;
  readonly policy: XdsLbPolicy;
  readonly connectTimeoutMs: number;
}

/** What a client can do with a cluster's policy, from its node's user_agent_name. */
export interface ClientCapabilities {
  /** gRPC's xDS clients know ROUND_ROBIN and RING_HASH only; LEAST_REQUEST is NACKed. */
  readonly leastRequest: boolean;
  /** Switchyard proxies also take peak_ewma and random, from the cluster's metadata. */
  readonly switchyardPolicies: boolean;
}

/** Metadata key under which a Switchyard proxy finds the policy Envoy's enum cannot express. */
export const SWITCHYARD_METADATA = 'io.switchyard';

const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' };

export function listenerResource(spec: XdsListenerSpec): AnyMessage {
  const manager = packAny(HTTP_CONNECTION_MANAGER_TYPE_URL, {
    rds: { config_source: ADS_SOURCE, route_config_name: spec.routeConfig },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: packAny(ROUTER_TYPE_URL, {}) }],
  });
  return packAny(TYPE_URL.listener, { name: spec.name, api_listener: { api_listener: manager } });
}

export function routeConfigurationResource(spec: XdsRouteConfigSpec): AnyMessage {
  return packAny(TYPE_URL.route, {
    name: spec.name,
    virtual_hosts: [{
      name: spec.name,
      domains: ['*'],
      routes: spec.routes.map((route) => ({
        match: route.path !== undefined ? { path: route.path } : { prefix: route.prefix ?? '/' },
        route: {
          cluster: route.cluster,
          ...(route.timeoutMs !== undefined && { max_stream_duration: { grpc_timeout_header_max: duration(route.timeoutMs) } }),
          ...(route.hashHeader !== undefined && { hash_policy: [{ header: { header_name: route.hashHeader } }] }),
        },
      })),
    }],
  });
}

/**
 * An EDS cluster. Policies a client cannot take are sent as the nearest one
 * it can (each policy's definition says which): least_request, random and
 * peak_ewma become ROUND_ROBIN for gRPC clients (per-RPC balancing still, just
 * not load-aware); a Switchyard proxy gets LEAST_REQUEST, and the exact policy
 * in metadata.
 */
export function clusterResource(spec: XdsClusterSpec, client: ClientCapabilities): AnyMessage {
  const definition = policyDefinition(spec.policy);
  const lbPolicy = definition.xds.exact === 'LEAST_REQUEST' && client.leastRequest ? 'LEAST_REQUEST' : definition.xds.forGrpcClients;
  return packAny(TYPE_URL.cluster, {
    name: spec.name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: spec.name },
    connect_timeout: duration(spec.connectTimeoutMs),
    lb_policy: lbPolicy,
    ...(lbPolicy === 'RING_HASH' && { ring_hash_lb_config: { minimum_ring_size: { value: 1024 }, maximum_ring_size: { value: 8_388_608 } } }),
    ...(client.switchyardPolicies && { metadata: { filter_metadata: { [SWITCHYARD_METADATA]: { fields: { lb_policy: { stringValue: spec.policy } } } } } }),
  });
}

/**
 * Endpoints grouped by zone into localities, each locality weighted by its
 * endpoints' total weight, so every endpoint gets an equal share whatever
 * its zone. A draining endpoint is sent as DRAINING: clients stop sending it
 * new RPCs.
 */
export function clusterLoadAssignmentResource(cluster: string, endpoints: readonly EndpointAddress[]): AnyMessage {
  const byZone = new Map<string, EndpointAddress[]>();
  for (const endpoint of endpoints) {
    const zone = endpoint.zone ?? '';
    byZone.set(zone, [...(byZone.get(zone) ?? []), endpoint]);
  }
  return packAny(TYPE_URL.endpoint, {
    cluster_name: cluster,
    endpoints: [...byZone].map(([zone, members]) => ({
      locality: zone === '' ? {} : { zone },
      load_balancing_weight: { value: Math.max(1, members.filter((e) => e.health !== 'draining').reduce((sum, e) => sum + e.weight, 0)) },
      lb_endpoints: members.map((endpoint) => ({
        endpoint: { address: { socket_address: { address: endpoint.host, port_value: endpoint.port } } },
        health_status: endpoint.health === 'draining' ? 'DRAINING' : 'HEALTHY',
        load_balancing_weight: { value: endpoint.weight },
      })),
    })),
  });
}

/** Capabilities by the client's user_agent_name: Switchyard proxies say "switchyard"; anything else is treated as a gRPC client. */
export function capabilitiesOf(userAgentName: string | undefined): ClientCapabilities {
  const switchyard = userAgentName === 'switchyard';
  return { leastRequest: switchyard, switchyardPolicies: switchyard };
}

function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}
