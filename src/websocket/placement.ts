/**
 * Where a new session goes: the endpoint its affinity cookie names, when the
 * cookie is one the proxy signed and the endpoint may take traffic now;
 * otherwise the cluster's policy picks (least_connections, ring_hash on a
 * header, …), avoiding endpoints this upgrade already failed to reach, and a
 * route with affinity sets a cookie for the new place. A `strict` route
 * answers 503 instead of moving a session whose endpoint is gone.
 */
import type { Cluster, ClusterEndpoint } from '../cluster/cluster.ts';
import type { AffinityKey } from './affinity.ts';
import { cookieValue, setCookie } from './affinity.ts';
import type { WebSocketRoute } from './routes.ts';
import type { AffinityOutcome } from './session-record.ts';
import type { SessionRegistry } from './sessions.ts';

export interface PlacementRequest {
  readonly cluster: Cluster;
  readonly route: WebSocketRoute;
  /** The request's Cookie field(s). */
  readonly cookies: string | string[] | number | undefined;
  /** The value of the cluster's hash_header (ring_hash), if any. */
  readonly hashKey: string | undefined;
  /** Endpoints this upgrade already failed to connect to. */
  readonly avoid: ReadonlySet<ClusterEndpoint>;
  /** Undefined when the config has no affinity key (then no route has affinity). */
  readonly key: AffinityKey | undefined;
}

export type Placement =
  /** Counted on `endpoint` (as pick() counts). `setCookie`: the Set-Cookie field to send with the 101. */
  | { readonly endpoint: ClusterEndpoint; readonly affinity: AffinityOutcome; readonly setCookie: string | undefined }
  | { readonly refused: 'no_healthy_endpoint' | 'affinity_unavailable'; readonly message: string };

export function place(request: PlacementRequest, sessions: SessionRegistry): Placement {
  const { cluster, route } = request;
  sessions.adopt(cluster);
  const affinity = route.config.affinity;
  const key = request.key;
  if (!affinity || !key) return pickFresh(request, 'none');
  const reading = key.read(cluster.name, cookieValue(request.cookies, affinity.cookie.name));
  if (reading.kind === 'absent') return pickFresh(request, 'new');
  if (reading.kind === 'tampered') return pickFresh(request, 'tampered');
  const named = findById(cluster, key, reading.id);
  if (named && cluster.isAvailable(named) && !request.avoid.has(named)) {
    cluster.claim(named);
    return { endpoint: named, affinity: 'cookie', setCookie: undefined };
  }
  if (affinity.strict) {
    return { refused: 'affinity_unavailable', message: `the endpoint this session's cookie names is ${named ? 'not available' : 'gone'} (affinity strict)` };
  }
  return pickFresh(request, 'stale');
}

function pickFresh(request: PlacementRequest, affinity: AffinityOutcome): Placement {
  const { cluster, route, key } = request;
  const endpoint = cluster.pick(request.hashKey, request.avoid.size > 0 ? request.avoid : undefined);
  if (!endpoint) return { refused: 'no_healthy_endpoint', message: cluster.describeUnavailable() };
  const cookie = route.config.affinity;
  const setCookieField = cookie && key ? setCookie(cookie.cookie, key.valueFor(cluster.name, key.endpointId(cluster.name, endpoint))) : undefined;
  return { endpoint, affinity, setCookie: setCookieField };
}

function findById(cluster: Cluster, key: AffinityKey, id: string): ClusterEndpoint | undefined {
  for (const endpoint of cluster.endpoints.values()) {
    if (key.endpointId(cluster.name, endpoint) === id) return endpoint;
  }
  return undefined;
}
