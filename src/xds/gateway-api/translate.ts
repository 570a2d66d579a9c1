/**
 * Gateway API objects → what Switchyard serves (a route configuration per
 * Gateway, its clusters, listener names for proxyless clients) and the status
 * every object should have. Pure: the same objects give the same result, on
 * every replica.
 *
 * Each Gateway becomes one RouteConfiguration, `gateway/<namespace>/<name>`,
 * with a virtual host per hostname its routes serve. A request's :authority
 * picks the virtual host; within it, rules are ordered by the spec's
 * precedence. A virtual host holds only the routes of the most specific
 * listener for its hostname (listener isolation), and a wildcard route is
 * copied into the more specific hosts it covers, so a host never falls
 * through to another.
 */
import { attachToParent, type Attachment, type ListenerClaims } from './attachment.ts';
import { BackendResolver, UNRESOLVED_CLUSTER, type BackendTarget } from './backends.ts';
import { condition } from './conditions.ts';
import { covers, hostnameRank } from './hostnames.ts';
import { evaluateListeners, type ListenerState } from './listeners.ts';
import { GATEWAY_GROUP, createdAt, keyOf, type Condition, type Gateway, type GatewayApiObjects, type GatewayStatus, type ObjectMeta, type ParentReference, type RouteKind, type RouteParentStatus } from './model.ts';
import { compileRoute, type CompiledRule, type MatchEntry, type RuleAction, type XdsMatch } from './rules.ts';

export interface GatewayXdsRoute {
  readonly name: string;
  readonly match: XdsMatch;
  readonly action: RuleAction;
}

export interface GatewayVirtualHost {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly GatewayXdsRoute[];
}

export interface GatewayRouteConfig {
  readonly name: string;
  readonly virtualHosts: readonly GatewayVirtualHost[];
}

export interface StatusTarget {
  readonly kind: 'GatewayClass' | 'Gateway' | RouteKind;
  readonly namespace: string | undefined;
  readonly name: string;
}

export interface GatewayTranslation {
  readonly gatewayClasses: readonly (StatusTarget & { readonly conditions: readonly Condition[] })[];
  readonly gateways: readonly (StatusTarget & { readonly status: GatewayStatus })[];
  /** Only the parents this controller owns; the writer keeps other controllers' entries. */
  readonly routes: readonly (StatusTarget & { readonly parents: readonly RouteParentStatus[] })[];
  readonly routeConfigs: readonly GatewayRouteConfig[];
  /** Names proxyless clients dial (`xds:///<hostname>`), each with its Gateway's route configuration. */
  readonly listeners: readonly { readonly name: string; readonly routeConfig: string }[];
  /** Every backend some route sends to: one cluster each. */
  readonly backends: readonly BackendTarget[];
}

export interface TranslateOptions {
  /** GatewayClasses with this spec.controllerName are Switchyard's. */
  readonly controllerName: string;
  /** What Gateways report as status.addresses: where the Switchyard proxies are reached. */
  readonly addresses: readonly { readonly type: string; readonly value: string }[];
}

export function routeConfigName(gateway: ObjectMeta): string {
  return `gateway/${gateway.namespace ?? 'default'}/${gateway.name}`;
}

interface RouteInput {
  readonly kind: RouteKind;
  readonly meta: ObjectMeta;
  readonly spec: { readonly parentRefs?: readonly ParentReference[]; readonly hostnames?: readonly string[] };
  readonly compiled: ReturnType<typeof compileRoute>;
}

interface Candidate {
  readonly hostname: string;
  readonly listenerHostname: string | undefined;
  readonly route: RouteInput;
  readonly rule: CompiledRule;
  readonly entry: MatchEntry;
}

export function translateGatewayApi(objects: GatewayApiObjects, options: TranslateOptions): GatewayTranslation {
  const classes = objects.gatewayClasses.filter((item) => item.spec?.controllerName === options.controllerName).sort(byKey);
  const classNames = new Set(classes.map((item) => item.metadata.name));
  const gateways = objects.gateways.filter((gateway) => classNames.has(gateway.spec?.gatewayClassName)).sort(byKey);
  const namespaces = new Map(objects.namespaces.map((namespace) => [namespace.metadata.name, namespace]));
  const resolver = new BackendResolver(objects.services, objects.referenceGrants);

  const routes: RouteInput[] = [
    ...objects.grpcRoutes.map((route) => ({ kind: 'GRPCRoute' as const, meta: route.metadata, spec: route.spec ?? {}, compiled: compileRoute({ kind: 'GRPCRoute', route }, resolver) })),
    ...objects.httpRoutes.map((route) => ({ kind: 'HTTPRoute' as const, meta: route.metadata, spec: route.spec ?? {}, compiled: compileRoute({ kind: 'HTTPRoute', route }, resolver) })),
  ].sort((a, b) => createdAt(a.meta) - createdAt(b.meta) || keyOf(a.meta).localeCompare(keyOf(b.meta)));

  const listenerStates = new Map(gateways.map((gateway) => [keyOf(gateway.metadata), evaluateListeners(gateway)]));
  const gatewaysByKey = new Map(gateways.map((gateway) => [keyOf(gateway.metadata), gateway]));
  const attached = new Map<string, { route: RouteInput; attachment: Attachment }[]>();
  const claims: ListenerClaims = new Map();
  const routeStatuses: GatewayTranslation['routes'][number][] = [];
  const backends = new Map<string, BackendTarget>();

  for (const route of routes) {
    const parents: RouteParentStatus[] = [];
    const routeNamespace = route.meta.namespace ?? 'default';
    for (const parentRef of route.spec.parentRefs ?? []) {
      if ((parentRef.group ?? GATEWAY_GROUP) !== GATEWAY_GROUP || (parentRef.kind ?? 'Gateway') !== 'Gateway') continue;
      const gatewayKey = `${parentRef.namespace ?? routeNamespace}/${parentRef.name}`;
      const gateway = gatewaysByKey.get(gatewayKey);
      // A Gateway of another controller (or none yet): its controller, if any, writes this parent's status.
      if (!gateway) continue;
      const result = attachToParent(parentRef, { kind: route.kind, meta: route.meta, hostnames: route.spec.hostnames }, gateway, listenerStates.get(gatewayKey)!, namespaces, claims);
      const { compiled } = route;
      let accepted = result.accepted;
      const conditions: Condition[] = [];
      if (result.attachments.length > 0 && compiled.rules.length === 0 && compiled.invalid.length > 0) {
        accepted = condition('Accepted', false, 'UnsupportedValue', compiled.invalid.join('; '), route.meta.generation);
      } else if (result.attachments.length > 0) {
        attached.set(gatewayKey, [...(attached.get(gatewayKey) ?? []), ...result.attachments.map((attachment) => ({ route, attachment }))]);
        for (const target of compiled.targets) backends.set(target.cluster, target);
      }
      conditions.push(accepted);
      const problem = compiled.backendProblems[0];
      conditions.push(problem
        ? condition('ResolvedRefs', false, problem.reason, compiled.backendProblems.map((p) => p.message).join('; '), route.meta.generation)
        : condition('ResolvedRefs', true, 'ResolvedRefs', 'All references resolved', route.meta.generation));
      if (accepted.status === 'True' && compiled.invalid.length > 0) {
        conditions.push(condition('PartiallyInvalid', true, 'UnsupportedValue', `rules left out: ${compiled.invalid.join('; ')}`, route.meta.generation));
      }
      parents.push({ parentRef, controllerName: options.controllerName, conditions });
    }
    if (parents.length > 0) routeStatuses.push({ kind: route.kind, namespace: route.meta.namespace, name: route.meta.name, parents });
  }

  const routeConfigs: GatewayRouteConfig[] = [];
  const listenerNames = new Map<string, string>();
  const gatewayStatuses: GatewayTranslation['gateways'][number][] = [];
  for (const gateway of gateways) {
    const key = keyOf(gateway.metadata);
    const states = listenerStates.get(key)!;
    const entries = attached.get(key) ?? [];
    const name = routeConfigName(gateway.metadata);
    const virtualHosts = buildVirtualHosts(entries, states);
    routeConfigs.push({ name, virtualHosts });
    for (const host of virtualHosts) for (const domain of host.domains) if (domain !== '*' && !domain.startsWith('*.') && !listenerNames.has(domain)) listenerNames.set(domain, name);
    gatewayStatuses.push({ kind: 'Gateway', namespace: gateway.metadata.namespace, name: gateway.metadata.name, status: gatewayStatus(gateway, states, entries, options) });
  }

  return {
    gatewayClasses: classes.map((item) => ({
      kind: 'GatewayClass' as const, namespace: undefined, name: item.metadata.name,
      conditions: [condition('Accepted', true, 'Accepted', 'Handled by the Switchyard control plane', item.metadata.generation)],
    })),
    gateways: gatewayStatuses,
    routes: routeStatuses,
    routeConfigs,
    listeners: [...listenerNames].sort(([a], [b]) => a.localeCompare(b)).map(([listener, routeConfig]) => ({ name: listener, routeConfig })),
    backends: [...backends.values()].sort((a, b) => a.cluster.localeCompare(b.cluster)),
  };
}

function gatewayStatus(gateway: Gateway, states: readonly ListenerState[], entries: readonly { route: RouteInput; attachment: Attachment }[], options: TranslateOptions): GatewayStatus {
  const generation = gateway.metadata.generation;
  const requested = (gateway.spec.addresses ?? []).length > 0;
  const anyUsable = states.some((state) => state.usable);
  const accepted = requested
    ? condition('Accepted', false, 'UnsupportedAddress', 'spec.addresses is not supported: the Gateway is served at the addresses of the Switchyard proxies', generation)
    : states.length > 0 && !anyUsable
      ? condition('Accepted', false, 'ListenersNotValid', 'no listener is valid', generation)
      : condition('Accepted', true, 'Accepted', 'Gateway accepted', generation);
  const programmed = accepted.status !== 'True'
    ? condition('Programmed', false, 'Invalid', 'the Gateway is not accepted', generation)
    : options.addresses.length === 0
      ? condition('Programmed', false, 'AddressNotAssigned', 'the control plane has no gateway_api.addresses to report', generation)
      : condition('Programmed', true, 'Programmed', 'Routes are served by the Switchyard proxies fed by this control plane', generation);
  return {
    addresses: options.addresses.map((address) => ({ type: address.type, value: address.value })),
    conditions: [accepted, programmed],
    listeners: states.map((state) => {
      const routes = new Set(entries.filter((entry) => entry.attachment.listener === state).map((entry) => keyOf(entry.route.meta) + entry.route.kind));
      return { name: state.listener.name, supportedKinds: state.supportedKinds, attachedRoutes: routes.size, conditions: state.conditions };
    }),
  };
}

function buildVirtualHosts(entries: readonly { route: RouteInput; attachment: Attachment }[], states: readonly ListenerState[]): GatewayVirtualHost[] {
  const candidates: Candidate[] = [];
  for (const { route, attachment } of entries) {
    for (const hostname of attachment.hostnames) {
      for (const rule of route.compiled.rules) {
        for (const entry of rule.entries) candidates.push({ hostname, listenerHostname: attachment.listener.hostname, route, rule, entry });
      }
    }
  }
  const domains = [...new Set(candidates.map((candidate) => candidate.hostname))].sort(byDomainSpecificity);
  const usableHostnames = states.filter((state) => state.usable).map((state) => state.hostname);
  return domains.map((domain) => {
    const listenerHostname = mostSpecificListener(domain, usableHostnames);
    const members = candidates
      .filter((candidate) => candidate.listenerHostname === listenerHostname && covers(candidate.hostname, domain))
      .sort(byPrecedence);
    const routes = members.map((candidate) => xdsRoute(candidate, domain));
    if (routes.length === 0) {
      // Its listener has no route for this hostname: the host must still exist, so requests do not fall through to another.
      routes.push({ name: `no-route@${domain}`, match: { prefix: '/', headers: [{ name: ':method', exact: 'NONE' }] }, action: { backends: [{ cluster: UNRESOLVED_CLUSTER, weight: 1 }] } });
    }
    return { name: domain, domains: [domain], routes };
  });
}

function xdsRoute(candidate: Candidate, domain: string): GatewayXdsRoute {
  const { route, rule, entry } = candidate;
  const base = `${route.kind.toLowerCase()}/${route.meta.namespace ?? 'default'}/${route.meta.name}/${rule.label}${rule.entries.length > 1 ? `/${entry.matchIndex}` : ''}`;
  return { name: domain === '*' ? base : `${base}@${domain}`, match: entry.match, action: rule.action };
}

/** The hostname of the most specific usable listener serving `domain`: an equal one, else the longest wildcard covering it, else one without a hostname. */
function mostSpecificListener(domain: string, hostnames: readonly (string | undefined)[]): string | undefined | null {
  let best: string | undefined | null = null;
  for (const hostname of hostnames) {
    if (hostname !== undefined && !covers(hostname, domain)) continue;
    if (best === null || (best === undefined && hostname !== undefined) || (hostname !== undefined && best !== undefined && specificity(hostname) > specificity(best))) best = hostname;
  }
  return best;
}

function specificity(hostname: string): number {
  return hostname.startsWith('*') ? hostname.length : 10_000 + hostname.length;
}

function byDomainSpecificity(a: string, b: string): number {
  return (a === '*' ? 1 : 0) - (b === '*' ? 1 : 0) || specificity(b) - specificity(a) || a.localeCompare(b);
}

function byPrecedence(a: Candidate, b: Candidate): number {
  const [aExact, aChars] = hostnameRank(a.hostname);
  const [bExact, bChars] = hostnameRank(b.hostname);
  if (aExact !== bExact) return bExact - aExact;
  if (aChars !== bChars) return bChars - aChars;
  for (let i = 0; i < Math.max(a.entry.rank.length, b.entry.rank.length); i++) {
    const diff = (b.entry.rank[i] ?? 0) - (a.entry.rank[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return createdAt(a.route.meta) - createdAt(b.route.meta)
    || keyOf(a.route.meta).localeCompare(keyOf(b.route.meta))
    || a.rule.ruleIndex - b.rule.ruleIndex
    || a.entry.matchIndex - b.entry.matchIndex;
}

function byKey(a: { metadata: ObjectMeta }, b: { metadata: ObjectMeta }): number {
  return keyOf(a.metadata).localeCompare(keyOf(b.metadata));
}
