/**
 * One route rule → the xDS routes it becomes (one per match), with the keys
 * that order them. What a rule asks for and Switchyard cannot do makes the
 * rule invalid: it is left out and the route's status says why.
 *
 * GRPCRoute matches: service and method (Exact: `/svc/method`, `/svc/` for a
 * service, `/[^/]+/method` for a method alone; RegularExpression: the two
 * expressions joined as `/(svc)/(method)`), headers ANDed within a match,
 * matches ORed, no match = everything. HTTPRoute matches: the path (Exact,
 * PathPrefix by whole segments, RegularExpression), headers and method.
 */
import { RETRY_CONDITIONS } from '../../config/resilience-schema.ts';
import { UNRESOLVED_CLUSTER, type BackendProblem, type BackendResolver, type BackendTarget } from './backends.ts';
import type { BackendRef, GrpcRoute, GrpcRouteMatch, HeaderMatch, HeaderModifier, HttpRoute, HttpRouteMatch, RouteFilter, RouteKind } from './model.ts';

/** Annotations a GRPCRoute may carry for what the Gateway API has no field for yet (docs/gateway-api.md, "Timeouts and retries"). */
export const ANNOTATIONS = {
  timeout: 'switchyard.io/timeout',
  retryOn: 'switchyard.io/retry-on',
  numRetries: 'switchyard.io/num-retries',
  perTryTimeout: 'switchyard.io/per-try-timeout',
  webProtocols: 'switchyard.io/web-protocols',
} as const;

/** Browser protocols a GRPCRoute takes unless its annotation says otherwise (docs/grpc-web.md). */
const GRPC_ROUTE_WEB_PROTOCOLS = ['grpc_web', 'connect'] as const;
const WEB_PROTOCOL_NAMES: readonly string[] = GRPC_ROUTE_WEB_PROTOCOLS;

export interface XdsMatch {
  readonly path?: string;
  readonly prefix?: string;
  /** A whole-path regular expression (safe_regex). */
  readonly regex?: string;
  readonly headers: readonly { readonly name: string; readonly exact?: string; readonly regex?: string }[];
}

export interface RetrySpec {
  readonly retryOn: readonly string[];
  readonly numRetries: number;
  readonly perTryTimeoutMs?: number;
}

export interface RuleAction {
  /** Shares with a weight above 0; an unresolved backend's share goes to UNRESOLVED_CLUSTER. */
  readonly backends: readonly { readonly cluster: string; readonly weight: number }[];
  readonly requestHeaders?: HeaderModifier;
  readonly responseHeaders?: HeaderModifier;
  readonly timeoutMs?: number;
  readonly retry?: RetrySpec;
  /** Browser protocols the route takes (GRPCRoute: both unless annotated); undefined: the proxy listener's. */
  readonly webProtocols?: readonly string[];
}

export interface MatchEntry {
  readonly match: XdsMatch;
  /** Precedence within a hostname, larger first (the spec's criteria after the hostname ones). */
  readonly rank: readonly number[];
  readonly matchIndex: number;
}

export interface CompiledRule {
  readonly ruleIndex: number;
  /** The rule's name, or `rule-<index>`. */
  readonly label: string;
  readonly entries: readonly MatchEntry[];
  readonly action: RuleAction;
}

export interface CompiledRoute {
  readonly rules: readonly CompiledRule[];
  /** Why rules were left out. */
  readonly invalid: readonly string[];
  readonly backendProblems: readonly BackendProblem[];
  readonly targets: readonly BackendTarget[];
}

type AnyRoute = { readonly kind: 'GRPCRoute'; readonly route: GrpcRoute } | { readonly kind: 'HTTPRoute'; readonly route: HttpRoute };

export function compileRoute(input: AnyRoute, backends: BackendResolver): CompiledRoute {
  const { route, kind } = input;
  const namespace = route.metadata.namespace ?? 'default';
  const rules: CompiledRule[] = [];
  const invalid: string[] = [];
  const backendProblems: BackendProblem[] = [];
  const targets: BackendTarget[] = [];
  const policy = kind === 'GRPCRoute' ? annotationPolicy(route.metadata.annotations) : { timeoutMs: undefined, retry: undefined, webProtocols: undefined, problems: [] };
  invalid.push(...policy.problems);
  (route.spec?.rules ?? []).forEach((rule, ruleIndex) => {
    const label = rule.name ?? `rule-${ruleIndex}`;
    const problems: string[] = [];
    const entries = kind === 'GRPCRoute'
      ? grpcEntries((rule as { matches?: readonly GrpcRouteMatch[] }).matches, problems)
      : httpEntries((rule as { matches?: readonly HttpRouteMatch[] }).matches, problems);
    const filters = compileFilters(rule.filters ?? [], kind, problems);
    let timeoutMs = policy.timeoutMs;
    let retry = policy.retry;
    if (kind === 'HTTPRoute') {
      const httpRule = (input.route.spec.rules ?? [])[ruleIndex]!;
      ({ timeoutMs, retry } = httpTimeouts(httpRule.timeouts, problems));
      if (httpRule.retry !== undefined) problems.push('retry is not supported yet');
      if (httpRule.sessionPersistence !== undefined) problems.push('sessionPersistence is not supported');
    }
    const shares = compileBackends(rule.backendRefs ?? [], namespace, kind, backends, backendProblems, targets, problems);
    if (problems.length > 0) {
      invalid.push(`${label}: ${problems.join('; ')}`);
      return;
    }
    rules.push({ ruleIndex, label, entries, action: { backends: shares, ...filters, ...(timeoutMs !== undefined && { timeoutMs }), ...(retry && { retry }), ...(policy.webProtocols && { webProtocols: policy.webProtocols }) } });
  });
  return { rules, invalid, backendProblems, targets };
}

function compileBackends(refs: readonly BackendRef[], namespace: string, kind: RouteKind, backends: BackendResolver, problems: BackendProblem[], targets: BackendTarget[], ruleProblems: string[]): RuleAction['backends'] {
  const shares = new Map<string, number>();
  for (const ref of refs) {
    if ((ref.filters ?? []).length > 0) ruleProblems.push(`backendRef ${ref.name}: filters on a backendRef are not supported`);
    const weight = ref.weight ?? 1;
    const resolution = backends.resolve(ref, namespace, kind);
    let cluster = UNRESOLVED_CLUSTER;
    if ('problem' in resolution) problems.push(resolution.problem);
    else {
      cluster = resolution.target.cluster;
      targets.push(resolution.target);
    }
    if (weight > 0) shares.set(cluster, (shares.get(cluster) ?? 0) + weight);
  }
  // No backend, or every weight 0: every request fails (UNAVAILABLE for gRPC), as the spec asks.
  if (shares.size === 0) return [{ cluster: UNRESOLVED_CLUSTER, weight: 1 }];
  return [...shares].map(([cluster, weight]) => ({ cluster, weight }));
}

function compileFilters(filters: readonly RouteFilter[], kind: RouteKind, problems: string[]): Pick<RuleAction, 'requestHeaders' | 'responseHeaders'> {
  const out: { requestHeaders?: HeaderModifier; responseHeaders?: HeaderModifier } = {};
  for (const filter of filters) {
    if (filter.type === 'RequestHeaderModifier' && filter.requestHeaderModifier) out.requestHeaders = mergeModifier(out.requestHeaders, filter.requestHeaderModifier);
    else if (filter.type === 'ResponseHeaderModifier' && filter.responseHeaderModifier) out.responseHeaders = mergeModifier(out.responseHeaders, filter.responseHeaderModifier);
    else problems.push(`filter ${filter.type} is not supported on a ${kind}${kind === 'HTTPRoute' && ['RequestRedirect', 'URLRewrite'].includes(filter.type) ? ' yet (it needs the HTTP/1.1 listener)' : ''}`);
  }
  for (const modifier of [out.requestHeaders, out.responseHeaders]) {
    for (const name of [...(modifier?.set ?? []).map((h) => h.name), ...(modifier?.add ?? []).map((h) => h.name), ...(modifier?.remove ?? [])]) {
      if (PROTECTED_HEADERS.has(name.toLowerCase())) problems.push(`header ${name} cannot be modified`);
    }
  }
  return out;
}

/** Headers the proxy itself owns on a gRPC stream (the config schema refuses them too). */
const PROTECTED_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'content-type', 'grpc-timeout', 'grpc-status', 'grpc-message']);

function mergeModifier(a: HeaderModifier | undefined, b: HeaderModifier): HeaderModifier {
  return { set: [...(a?.set ?? []), ...(b.set ?? [])], add: [...(a?.add ?? []), ...(b.add ?? [])], remove: [...(a?.remove ?? []), ...(b.remove ?? [])] };
}

function headerMatches(headers: readonly HeaderMatch[] | undefined, problems: string[]): XdsMatch['headers'] {
  return (headers ?? []).map((header) => {
    const name = header.name.toLowerCase();
    if ((header.type ?? 'Exact') === 'Exact') return { name, exact: header.value };
    if (header.type === 'RegularExpression') return { name, regex: checkedRegex(header.value, `header ${header.name}`, problems) };
    problems.push(`header match type ${String(header.type)} is not supported`);
    return { name, exact: header.value };
  });
}

function grpcEntries(matches: readonly GrpcRouteMatch[] | undefined, problems: string[]): MatchEntry[] {
  if (!matches || matches.length === 0) return [{ match: { prefix: '/', headers: [] }, rank: [0, 0, 0], matchIndex: 0 }];
  return matches.map((match, matchIndex) => {
    const headers = headerMatches(match.headers, problems);
    const method = match.method;
    const service = method?.service ?? '';
    const name = method?.method ?? '';
    let path: Pick<XdsMatch, 'path' | 'prefix' | 'regex'>;
    if (!method || (service === '' && name === '')) path = { prefix: '/' };
    else if ((method.type ?? 'Exact') === 'RegularExpression') {
      checkedRegex(service || '.', 'method.service', problems);
      checkedRegex(name || '.', 'method.method', problems);
      path = { regex: `/(?:${service || '[^/]+'})/(?:${name || '[^/]+'})` };
    } else if (method.type !== undefined && method.type !== 'Exact') {
      problems.push(`method match type ${String(method.type)} is not supported`);
      path = { prefix: '/' };
    } else if (service !== '' && name !== '') path = { path: `/${service}/${name}` };
    else if (service !== '') path = { prefix: `/${service}/` };
    else path = { regex: `/[^/]+/${escapeRegex(name)}` };
    return { match: { ...path, headers }, rank: [service.length, name.length, headers.length], matchIndex };
  });
}

function httpEntries(matches: readonly HttpRouteMatch[] | undefined, problems: string[]): MatchEntry[] {
  const list = !matches || matches.length === 0 ? [{} as HttpRouteMatch] : matches;
  return list.map((match, matchIndex) => {
    const headers = [...headerMatches(match.headers, problems)];
    if (match.method !== undefined) headers.push({ name: ':method', exact: match.method });
    if ((match.queryParams ?? []).length > 0) problems.push('queryParams matches are not supported yet (gRPC paths carry no query; they wait for the HTTP/1.1 listener)');
    const type = match.path?.type ?? 'PathPrefix';
    const value = match.path?.value ?? '/';
    let path: Pick<XdsMatch, 'path' | 'prefix' | 'regex'>;
    // Exact outranks a regular expression, which outranks a prefix; then longer values first.
    let kindRank = 1;
    if (type === 'Exact') {
      path = { path: value };
      kindRank = 3;
    } else if (type === 'RegularExpression') {
      path = { regex: checkedRegex(value, 'path', problems) };
      kindRank = 2;
    } else if (type === 'PathPrefix') {
      const trimmed = value.replace(/\/+$/, '');
      // A prefix matches whole path segments: /foo takes /foo and /foo/bar, not /foobar.
      path = trimmed === '' ? { prefix: '/' } : { regex: `${escapeRegex(trimmed)}(?:/.*)?` };
    } else {
      problems.push(`path match type ${String(type)} is not supported`);
      path = { prefix: '/' };
    }
    const rank = [kindRank, value.length, match.method !== undefined ? 1 : 0, (match.headers ?? []).length, (match.queryParams ?? []).length];
    return { match: { ...path, headers }, rank, matchIndex };
  });
}

function httpTimeouts(timeouts: { request?: string; backendRequest?: string } | undefined, problems: string[]): { timeoutMs?: number; retry?: RetrySpec } {
  if (!timeouts) return {};
  const request = timeouts.request === undefined ? undefined : gatewayDuration(timeouts.request, 'timeouts.request', problems);
  const backend = timeouts.backendRequest === undefined ? undefined : gatewayDuration(timeouts.backendRequest, 'timeouts.backendRequest', problems);
  // 0 disables the timeout. Without retries a backend request is the request, so the tighter bound applies.
  const bounds = [request, backend].filter((ms): ms is number => ms !== undefined && ms > 0);
  return bounds.length === 0 ? {} : { timeoutMs: Math.min(...bounds) };
}

function annotationPolicy(annotations: Readonly<Record<string, string>> | undefined): { timeoutMs?: number; retry?: RetrySpec; webProtocols: readonly string[]; problems: string[] } {
  const problems: string[] = [];
  const read = (key: string) => annotations?.[key];
  const timeoutText = read(ANNOTATIONS.timeout);
  const timeoutMs = timeoutText === undefined ? undefined : gatewayDuration(timeoutText, ANNOTATIONS.timeout, problems);
  const retryOnText = read(ANNOTATIONS.retryOn);
  const numText = read(ANNOTATIONS.numRetries);
  const perTryText = read(ANNOTATIONS.perTryTimeout);
  let retry: RetrySpec | undefined;
  if (retryOnText !== undefined || numText !== undefined || perTryText !== undefined) {
    const retryOn = (retryOnText ?? 'unavailable,connect-failure,refused-stream').split(',').map((item) => item.trim().toLowerCase().replace(/-/g, '_')).filter(Boolean);
    for (const item of retryOn) if (!(RETRY_CONDITIONS as readonly string[]).includes(item)) problems.push(`${ANNOTATIONS.retryOn}: "${item}" is not a retry condition (${RETRY_CONDITIONS.join(', ')})`);
    const numRetries = numText === undefined ? 2 : Number(numText);
    if (!Number.isInteger(numRetries) || numRetries < 0 || numRetries > 10) problems.push(`${ANNOTATIONS.numRetries}: expected a whole number from 0 to 10, got "${numText}"`);
    const perTryTimeoutMs = perTryText === undefined ? undefined : gatewayDuration(perTryText, ANNOTATIONS.perTryTimeout, problems);
    retry = { retryOn, numRetries, ...(perTryTimeoutMs !== undefined && { perTryTimeoutMs }) };
  }
  const webProtocols = webProtocolsOf(read(ANNOTATIONS.webProtocols), problems);
  return { ...(timeoutMs !== undefined && timeoutMs > 0 && { timeoutMs }), ...(retry && { retry }), webProtocols, problems };
}

/** `grpc_web,connect` (the default), one of them, or `none`. */
function webProtocolsOf(text: string | undefined, problems: string[]): readonly string[] {
  if (text === undefined) return GRPC_ROUTE_WEB_PROTOCOLS;
  if (text.trim().toLowerCase() === 'none') return [];
  const names = [...new Set(text.split(',').map((item) => item.trim().toLowerCase().replace(/-/g, '_')).filter(Boolean))];
  for (const name of names) if (!WEB_PROTOCOL_NAMES.includes(name)) problems.push(`${ANNOTATIONS.webProtocols}: "${name}" is not a browser protocol (grpc_web, connect, or none)`);
  return names.filter((name) => WEB_PROTOCOL_NAMES.includes(name));
}

/** A Gateway API Duration (GEP-2257: `1h`, `30s`, `500ms`, combinations); undefined with a problem when it is not one. */
function gatewayDuration(text: string, where: string, problems: string[]): number | undefined {
  if (!/^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(text)) {
    problems.push(`${where}: "${text}" is not a duration (e.g. 2s, 500ms, 1m30s)`);
    return undefined;
  }
  return sumDuration(text);
}

function sumDuration(text: string): number {
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
  let total = 0;
  for (const [, amount, suffix] of text.matchAll(/([0-9]+)(ms|h|m|s)/g)) total += Number(amount) * unit[suffix!]!;
  return total;
}

function checkedRegex(source: string, where: string, problems: string[]): string {
  try {
    new RegExp(source);
  } catch (error) {
    problems.push(`${where}: invalid regular expression (${(error as Error).message})`);
  }
  return source;
}

export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
