/**
 * Which listeners a route's parentRef attaches it to, and the route's
 * `Accepted` condition for that parent: the sectionName and port must name
 * listeners (NoMatchingParent), the listeners must allow the route's
 * namespace and kind (NotAllowedByListeners), and its hostnames must
 * intersect theirs (NoMatchingListenerHostname). An HTTPRoute and a GRPCRoute
 * whose hostnames intersect on one listener: the older (then the first by
 * namespace/name) attaches, the other is refused there.
 */
import { condition } from './conditions.ts';
import { effectiveHostnames, overlap } from './hostnames.ts';
import type { ListenerState } from './listeners.ts';
import type { Condition, Gateway, LabelSelector, Namespace, ObjectMeta, ParentReference, RouteKind } from './model.ts';

export interface Attachment {
  readonly listener: ListenerState;
  /** The hostnames the route serves on this listener (`*`: any). */
  readonly hostnames: readonly string[];
}

export interface ParentResult {
  readonly attachments: readonly Attachment[];
  readonly accepted: Condition;
}

/** Routes already attached to each listener, by `<gateway key>/<listener name>`, to find HTTPRoute/GRPCRoute conflicts. */
export type ListenerClaims = Map<string, { readonly kind: RouteKind; readonly route: string; readonly hostnames: readonly string[] }[]>;

export function attachToParent(
  parentRef: ParentReference,
  route: { readonly kind: RouteKind; readonly meta: ObjectMeta; readonly hostnames: readonly string[] | undefined },
  gateway: Gateway,
  listeners: readonly ListenerState[],
  namespaces: ReadonlyMap<string, Namespace>,
  claims: ListenerClaims,
): ParentResult {
  const generation = route.meta.generation;
  const refused = (reason: string, message: string): ParentResult => ({ attachments: [], accepted: condition('Accepted', false, reason, message, generation) });
  const named = listeners.filter((state) => (parentRef.sectionName === undefined || state.listener.name === parentRef.sectionName) && (parentRef.port === undefined || state.listener.port === parentRef.port));
  if (named.length === 0) {
    const what = [parentRef.sectionName !== undefined && `sectionName ${parentRef.sectionName}`, parentRef.port !== undefined && `port ${parentRef.port}`].filter(Boolean).join(' and ');
    return refused('NoMatchingParent', `Gateway ${gateway.metadata.namespace}/${gateway.metadata.name} has no listener with ${what}`);
  }
  const routeNamespace = route.meta.namespace ?? 'default';
  const allowed = named.filter((state) => allowsNamespace(state, routeNamespace, gateway.metadata.namespace ?? 'default', namespaces) && state.supportedKinds.some((kind) => kind.kind === route.kind));
  if (allowed.length === 0) return refused('NotAllowedByListeners', `no listener of the parent allows ${route.kind}s from namespace ${routeNamespace}`);
  const matching = allowed.map((listener) => ({ listener, hostnames: effectiveHostnames(listener.hostname, route.hostnames) })).filter((entry) => entry.hostnames.length > 0);
  if (matching.length === 0) return refused('NoMatchingListenerHostname', `none of the route's hostnames (${(route.hostnames ?? []).join(', ')}) matches a listener's hostname`);
  const usable = matching.filter((entry) => entry.listener.usable);
  if (usable.length === 0) return refused('NotAllowedByListeners', 'the listeners it would attach to are not valid (see the Gateway\'s listener status)');

  const gatewayKey = `${gateway.metadata.namespace}/${gateway.metadata.name}`;
  const routeKey = `${routeNamespace}/${route.meta.name}`;
  const conflicts: string[] = [];
  const attachments = usable.filter((entry) => {
    const key = `${gatewayKey}/${entry.listener.listener.name}`;
    const rival = (claims.get(key) ?? []).find((claim) => claim.kind !== route.kind && claim.hostnames.some((a) => entry.hostnames.some((b) => overlap(a, b))));
    if (rival) conflicts.push(`${rival.kind} ${rival.route} already serves these hostnames on listener ${entry.listener.listener.name}`);
    return rival === undefined;
  });
  if (attachments.length === 0) return refused('NotAllowedByListeners', `${conflicts.join('; ')} (an HTTPRoute and a GRPCRoute may not share a hostname on a listener: the older one wins)`);
  for (const entry of attachments) {
    const key = `${gatewayKey}/${entry.listener.listener.name}`;
    claims.set(key, [...(claims.get(key) ?? []), { kind: route.kind, route: routeKey, hostnames: entry.hostnames }]);
  }
  return { attachments, accepted: condition('Accepted', true, 'Accepted', 'Route accepted', generation) };
}

function allowsNamespace(state: ListenerState, routeNamespace: string, gatewayNamespace: string, namespaces: ReadonlyMap<string, Namespace>): boolean {
  const from = state.listener.allowedRoutes?.namespaces?.from ?? 'Same';
  if (from === 'All') return true;
  if (from === 'Same') return routeNamespace === gatewayNamespace;
  const labels = namespaces.get(routeNamespace)?.metadata.labels ?? {};
  return selects(state.listener.allowedRoutes?.namespaces?.selector, labels);
}

/** A Kubernetes label selector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist), all ANDed. */
export function selects(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return false;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const expression of selector.matchExpressions ?? []) {
    const value = labels[expression.key];
    const values = expression.values ?? [];
    const ok = expression.operator === 'In' ? value !== undefined && values.includes(value)
      : expression.operator === 'NotIn' ? value === undefined || !values.includes(value)
      : expression.operator === 'Exists' ? value !== undefined
      : expression.operator === 'DoesNotExist' ? value === undefined
      : false;
    if (!ok) return false;
  }
  return true;
}
