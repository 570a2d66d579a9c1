/**
 * A Gateway's listeners: which are usable, which conflict, which route kinds
 * each takes, and the conditions that say so. Switchyard proxies serve
 * gRPC and HTTP/2 with prior knowledge (h2c) on an HTTP listener; HTTPS, TLS,
 * TCP and UDP listeners are not supported yet (see docs/gateway-api.md).
 */
import { condition } from './conditions.ts';
import { GATEWAY_GROUP, type Condition, type Gateway, type GatewayListener, type RouteGroupKind } from './model.ts';

export const SUPPORTED_PROTOCOLS = new Set(['HTTP']);
const ROUTE_KINDS: readonly RouteGroupKind[] = [{ group: GATEWAY_GROUP, kind: 'GRPCRoute' }, { group: GATEWAY_GROUP, kind: 'HTTPRoute' }];

export interface ListenerState {
  readonly listener: GatewayListener;
  readonly hostname: string | undefined;
  /** Routes may attach and traffic is served. */
  readonly usable: boolean;
  readonly supportedKinds: readonly RouteGroupKind[];
  /** Conditions other than attachedRoutes, which come later. */
  readonly conditions: readonly Condition[];
}

export function evaluateListeners(gateway: Gateway): ListenerState[] {
  const generation = gateway.metadata.generation;
  const listeners = gateway.spec.listeners ?? [];
  const conflicts = findConflicts(listeners);
  return listeners.map((listener) => {
    const protocolOk = SUPPORTED_PROTOCOLS.has(listener.protocol);
    const requested = listener.allowedRoutes?.kinds;
    const supportedKinds = requested === undefined || requested.length === 0
      ? ROUTE_KINDS
      : requested.filter((kind) => ROUTE_KINDS.some((known) => known.kind === kind.kind && (kind.group ?? GATEWAY_GROUP) === known.group)).map((kind) => ({ group: kind.group ?? GATEWAY_GROUP, kind: kind.kind }));
    const invalidKinds = requested !== undefined && requested.length > supportedKinds.length;
    const conflict = conflicts.get(listener.name);
    const conditions: Condition[] = [];
    conditions.push(protocolOk
      ? condition('Accepted', true, 'Accepted', 'Listener accepted', generation)
      : condition('Accepted', false, 'UnsupportedProtocol', `protocol ${listener.protocol} is not supported: Switchyard serves HTTP (h2c, gRPC) listeners`, generation));
    conditions.push(conflict
      ? condition('Conflicted', true, conflict, conflict === 'ProtocolConflict' ? `another listener on port ${listener.port} uses a different protocol` : `another listener on port ${listener.port} has the same hostname`, generation)
      : condition('Conflicted', false, 'NoConflicts', 'No conflicts', generation));
    conditions.push(invalidKinds
      ? condition('ResolvedRefs', false, 'InvalidRouteKinds', `only GRPCRoute and HTTPRoute (${GATEWAY_GROUP}) are supported`, generation)
      : condition('ResolvedRefs', true, 'ResolvedRefs', 'All references resolved', generation));
    const usable = protocolOk && !conflict && (!invalidKinds || supportedKinds.length > 0);
    conditions.push(usable
      ? condition('Programmed', true, 'Programmed', 'Listener programmed', generation)
      : condition('Programmed', false, 'Invalid', 'Listener is not valid (see the other conditions)', generation));
    return { listener, hostname: listener.hostname?.toLowerCase(), usable, supportedKinds, conditions };
  });
}

/** Listeners that share a port: a different protocol is a ProtocolConflict, the same hostname a HostnameConflict. */
function findConflicts(listeners: readonly GatewayListener[]): Map<string, 'ProtocolConflict' | 'HostnameConflict'> {
  const result = new Map<string, 'ProtocolConflict' | 'HostnameConflict'>();
  const byPort = new Map<number, GatewayListener[]>();
  for (const listener of listeners) byPort.set(listener.port, [...(byPort.get(listener.port) ?? []), listener]);
  for (const group of byPort.values()) {
    const protocols = new Set(group.map((listener) => listener.protocol));
    if (protocols.size > 1) {
      for (const listener of group) result.set(listener.name, 'ProtocolConflict');
      continue;
    }
    const byHostname = new Map<string, GatewayListener[]>();
    for (const listener of group) {
      const key = listener.hostname?.toLowerCase() ?? '';
      byHostname.set(key, [...(byHostname.get(key) ?? []), listener]);
    }
    for (const same of byHostname.values()) if (same.length > 1) for (const listener of same) result.set(listener.name, 'HostnameConflict');
  }
  return result;
}
