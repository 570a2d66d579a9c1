/**
 * The proxy's `xds` section: where its control plane is and how to reach it
 * (mTLS), and which RouteConfiguration to serve. With it, routes and clusters
 * come from the control plane (docs/control-plane.md); listeners, health,
 * admin and the rest stay in the file.
 */
import { z } from 'zod';
import { duration } from './schema-primitives.ts';

/** `host:port`, `[ipv6]:port`: what @grpc/grpc-js dials. */
const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/;

const xdsTls = z.strictObject({
  /** CA bundle the control plane's certificate must chain to. */
  ca_file: z.string().min(1),
  /** The proxy's client certificate (its identity: a SPIFFE ID or DNS SAN the control plane binds to node_id) and key. */
  cert_file: z.string().min(1),
  key_file: z.string().min(1),
  /** Name checked against the control plane's certificate instead of the host in `server`. */
  server_name: z.string().min(1).optional(),
});

export const xdsClientSettings = z.strictObject({
  /** The control plane's ADS address, `host:port`. */
  server: z.string().refine((text) => {
    const port = HOST_PORT.exec(text)?.[1];
    return port !== undefined && Number(port) >= 1 && Number(port) <= 65535;
  }, { error: (issue) => `expected "host:port" ("[ipv6]:port" for IPv6), got ${JSON.stringify(issue.input)}` }),
  /** mTLS to the control plane; there is no plaintext mode. */
  tls: xdsTls,
  /** node.id sent to the control plane. */
  node_id: z.string().min(1),
  /** node.cluster sent to the control plane. */
  node_cluster: z.string().min(1).optional(),
  /** The RouteConfiguration (RDS) whose routes this proxy serves. */
  route_config: z.string().min(1),
  /** Every applied snapshot is written here; at start, used when the control plane cannot be reached. Unset: no cache. */
  cache_file: z.string().min(1).optional(),
  /** How long start waits for the first complete config before using the cache (or starting without routes). */
  initial_fetch_timeout: duration.default(10_000),
  /**
   * Which ADS protocol: `delta` (incremental: only changed resources travel, and after a reconnect
   * unchanged ones are not sent again), `sotw` (state of the world), or `auto` (delta, and state of
   * the world for good if the control plane answers UNIMPLEMENTED).
   */
  protocol: z.enum(['auto', 'delta', 'sotw']).default('auto'),
});

export type XdsClientSettings = z.output<typeof xdsClientSettings>;

/**
 * A cluster's endpoint source when the xDS client made it: the
 * ClusterLoadAssignment named `service_name` (EDS). Not for config files: the
 * clusters of a proxy with an `xds` section all come from the control plane.
 */
export const edsDiscovery = z.strictObject({
  service_name: z.string().min(1),
});
