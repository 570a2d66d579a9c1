/**
 * backendRefs → clusters. A backend is a Service port in the route's
 * namespace, or in another namespace that a ReferenceGrant opens to the
 * route's kind. Its endpoints come from the Service's EndpointSlices; each
 * (Service, port) is one cluster. A backend that cannot be resolved keeps its
 * share of the route's traffic, answered UNAVAILABLE (by a cluster without
 * endpoints), as the spec asks.
 */
import { GATEWAY_GROUP, type BackendRef, type ReferenceGrant, type RouteKind, type Service } from './model.ts';

/** The cluster that answers every RPC UNAVAILABLE: it never has endpoints. */
export const UNRESOLVED_CLUSTER = 'gateway-api/unresolved-backend';

export interface BackendTarget {
  /** `k8s/<namespace>/<service>:<port>`. */
  readonly cluster: string;
  readonly namespace: string;
  readonly service: string;
  /** The Service port's name, which its EndpointSlices carry ('' for an unnamed port). */
  readonly portName: string;
  readonly port: number;
}

export type BackendProblemReason = 'BackendNotFound' | 'RefNotPermitted' | 'InvalidKind' | 'UnsupportedProtocol';

export interface BackendProblem {
  readonly reason: BackendProblemReason;
  readonly message: string;
}

export type Resolution = { readonly target: BackendTarget } | { readonly problem: BackendProblem };

/** appProtocol values the proxy cannot speak to a backend yet: WebSocket and HTTP/1.1 wait for issue 15, TLS to backends is not sent over xDS. */
const UNSUPPORTED_APP_PROTOCOLS = new Set(['kubernetes.io/ws', 'kubernetes.io/wss', 'ws', 'wss', 'https', 'http', 'kubernetes.io/https']);

export class BackendResolver {
  readonly #services = new Map<string, Service>();
  readonly #grants: readonly ReferenceGrant[];

  constructor(services: readonly Service[], grants: readonly ReferenceGrant[]) {
    for (const service of services) this.#services.set(`${service.metadata.namespace}/${service.metadata.name}`, service);
    this.#grants = grants;
  }

  resolve(ref: BackendRef, routeNamespace: string, routeKind: RouteKind): Resolution {
    const group = ref.group ?? '';
    const kind = ref.kind ?? 'Service';
    if (group !== '' || kind !== 'Service') return { problem: { reason: 'InvalidKind', message: `backendRef ${describe(ref)}: ${group === '' ? '' : `${group}/`}${kind} is not supported (only core Services)` } };
    const namespace = ref.namespace ?? routeNamespace;
    if (namespace !== routeNamespace && !this.#permitted(routeNamespace, routeKind, namespace, ref.name)) {
      return { problem: { reason: 'RefNotPermitted', message: `backendRef ${describe(ref)}: no ReferenceGrant in namespace ${namespace} lets ${routeKind}s from ${routeNamespace} refer to it` } };
    }
    const service = this.#services.get(`${namespace}/${ref.name}`);
    if (!service) return { problem: { reason: 'BackendNotFound', message: `backendRef ${describe(ref)}: Service ${namespace}/${ref.name} not found` } };
    if (ref.port === undefined) return { problem: { reason: 'BackendNotFound', message: `backendRef ${describe(ref)}: a Service backend needs a port` } };
    const port = (service.spec?.ports ?? []).find((entry) => entry.port === ref.port && (entry.protocol ?? 'TCP') === 'TCP');
    if (!port) return { problem: { reason: 'BackendNotFound', message: `backendRef ${describe(ref)}: Service ${namespace}/${ref.name} has no TCP port ${ref.port}` } };
    if (port.appProtocol !== undefined && UNSUPPORTED_APP_PROTOCOLS.has(port.appProtocol)) {
      return { problem: { reason: 'UnsupportedProtocol', message: `backendRef ${describe(ref)}: appProtocol ${port.appProtocol} is not supported (Switchyard speaks HTTP/2 with prior knowledge, kubernetes.io/h2c, to backends)` } };
    }
    return { target: { cluster: `k8s/${namespace}/${ref.name}:${ref.port}`, namespace, service: ref.name, portName: port.name ?? '', port: ref.port } };
  }

  #permitted(fromNamespace: string, fromKind: RouteKind, toNamespace: string, service: string): boolean {
    return this.#grants.some((grant) => grant.metadata.namespace === toNamespace
      && (grant.spec?.from ?? []).some((from) => from.group === GATEWAY_GROUP && from.kind === fromKind && from.namespace === fromNamespace)
      && (grant.spec?.to ?? []).some((to) => (to.group ?? '') === '' && to.kind === 'Service' && (to.name === undefined || to.name === '' || to.name === service)));
  }
}

function describe(ref: BackendRef): string {
  return `${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}${ref.port !== undefined ? `:${ref.port}` : ''}`;
}
