/**
 * The Gateway API objects (gateway.networking.k8s.io/v1, v1beta1 for
 * ReferenceGrant) and the core objects the translation reads, as far as it
 * reads them. Everything arrives from the API server as JSON and is read
 * defensively: an optional field may be missing even where the CRD defaults it.
 */

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly generation?: number;
  readonly resourceVersion?: string;
  /** RFC 3339 from the API server; the client library may hand it over as a Date. */
  readonly creationTimestamp?: string | Date;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface Condition {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
  readonly lastTransitionTime?: string;
}

export interface GatewayClass {
  readonly metadata: ObjectMeta;
  readonly spec: { readonly controllerName: string };
  readonly status?: { readonly conditions?: readonly Condition[] };
}

export interface RouteGroupKind {
  readonly group?: string;
  readonly kind: string;
}

export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly { readonly key: string; readonly operator: string; readonly values?: readonly string[] }[];
}

export interface GatewayListener {
  readonly name: string;
  readonly hostname?: string;
  readonly port: number;
  readonly protocol: string;
  readonly tls?: unknown;
  readonly allowedRoutes?: {
    readonly namespaces?: { readonly from?: 'All' | 'Same' | 'Selector'; readonly selector?: LabelSelector };
    readonly kinds?: readonly RouteGroupKind[];
  };
}

export interface ListenerStatus {
  readonly name: string;
  readonly supportedKinds: readonly RouteGroupKind[];
  readonly attachedRoutes: number;
  readonly conditions: readonly Condition[];
}

export interface GatewayStatus {
  readonly addresses?: readonly { readonly type?: string; readonly value: string }[];
  readonly conditions?: readonly Condition[];
  readonly listeners?: readonly ListenerStatus[];
}

export interface Gateway {
  readonly metadata: ObjectMeta;
  readonly spec: {
    readonly gatewayClassName: string;
    readonly listeners: readonly GatewayListener[];
    readonly addresses?: readonly { readonly type?: string; readonly value?: string }[];
  };
  readonly status?: GatewayStatus;
}

export interface ParentReference {
  readonly group?: string;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name: string;
  readonly sectionName?: string;
  readonly port?: number;
}

export interface BackendRef {
  readonly group?: string;
  readonly kind?: string;
  readonly name: string;
  readonly namespace?: string;
  readonly port?: number;
  /** Default 1. */
  readonly weight?: number;
  readonly filters?: readonly unknown[];
}

export interface HeaderMatch {
  readonly type?: 'Exact' | 'RegularExpression';
  readonly name: string;
  readonly value: string;
}

export interface HeaderModifier {
  readonly set?: readonly { readonly name: string; readonly value: string }[];
  readonly add?: readonly { readonly name: string; readonly value: string }[];
  readonly remove?: readonly string[];
}

export interface RouteFilter {
  readonly type: string;
  readonly requestHeaderModifier?: HeaderModifier;
  readonly responseHeaderModifier?: HeaderModifier;
}

export interface GrpcRouteMatch {
  readonly method?: { readonly type?: 'Exact' | 'RegularExpression'; readonly service?: string; readonly method?: string };
  readonly headers?: readonly HeaderMatch[];
}

export interface GrpcRouteRule {
  readonly name?: string;
  readonly matches?: readonly GrpcRouteMatch[];
  readonly filters?: readonly RouteFilter[];
  readonly backendRefs?: readonly BackendRef[];
}

export interface HttpRouteMatch {
  readonly path?: { readonly type?: 'Exact' | 'PathPrefix' | 'RegularExpression'; readonly value?: string };
  readonly headers?: readonly HeaderMatch[];
  readonly queryParams?: readonly unknown[];
  readonly method?: string;
}

export interface HttpRouteRule {
  readonly name?: string;
  readonly matches?: readonly HttpRouteMatch[];
  readonly filters?: readonly RouteFilter[];
  readonly backendRefs?: readonly BackendRef[];
  readonly timeouts?: { readonly request?: string; readonly backendRequest?: string };
  readonly retry?: unknown;
  readonly sessionPersistence?: unknown;
}

export interface RouteParentStatus {
  readonly parentRef: ParentReference;
  readonly controllerName: string;
  readonly conditions: readonly Condition[];
}

export interface RouteStatus {
  readonly parents?: readonly RouteParentStatus[];
}

export interface GrpcRoute {
  readonly kind?: 'GRPCRoute';
  readonly metadata: ObjectMeta;
  readonly spec: { readonly parentRefs?: readonly ParentReference[]; readonly hostnames?: readonly string[]; readonly rules?: readonly GrpcRouteRule[] };
  readonly status?: RouteStatus;
}

export interface HttpRoute {
  readonly kind?: 'HTTPRoute';
  readonly metadata: ObjectMeta;
  readonly spec: { readonly parentRefs?: readonly ParentReference[]; readonly hostnames?: readonly string[]; readonly rules?: readonly HttpRouteRule[] };
  readonly status?: RouteStatus;
}

export interface ReferenceGrant {
  readonly metadata: ObjectMeta;
  readonly spec: {
    readonly from: readonly { readonly group: string; readonly kind: string; readonly namespace: string }[];
    readonly to: readonly { readonly group: string; readonly kind: string; readonly name?: string }[];
  };
}

export interface Service {
  readonly metadata: ObjectMeta;
  readonly spec?: { readonly ports?: readonly { readonly name?: string; readonly port: number; readonly protocol?: string; readonly appProtocol?: string }[] };
}

export interface Namespace {
  readonly metadata: ObjectMeta;
}

/** Everything the translation reads: the informers' caches at one moment. */
export interface GatewayApiObjects {
  readonly gatewayClasses: readonly GatewayClass[];
  readonly gateways: readonly Gateway[];
  readonly grpcRoutes: readonly GrpcRoute[];
  readonly httpRoutes: readonly HttpRoute[];
  readonly referenceGrants: readonly ReferenceGrant[];
  readonly services: readonly Service[];
  readonly namespaces: readonly Namespace[];
}

export type RouteKind = 'GRPCRoute' | 'HTTPRoute';

/** `namespace/name`. */
export function keyOf(meta: ObjectMeta): string {
  return `${meta.namespace ?? ''}/${meta.name}`;
}

/** Milliseconds since the epoch, for ordering by age; a missing timestamp sorts last. */
export function createdAt(meta: ObjectMeta): number {
  const value = meta.creationTimestamp;
  const time = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isNaN(time) ? Number.MAX_SAFE_INTEGER : time;
}
