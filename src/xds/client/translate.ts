/**
 * Envoy v3 resources → Switchyard's own config, for a proxy fed by xDS.
 *
 * Each resource is first translated on its own (translateCluster,
 * translateRouteConfiguration, translateLoadAssignment), then the routes and
 * the clusters they use are put together and checked by the same schema as a
 * config file (composeConfig). Whatever cannot be applied throws an
 * XdsRejection whose message says which resource, which field and why: the
 * xDS client sends it back as the NACK's error_detail.
 *
 * What is taken, ignored and refused is listed in docs/control-plane.md
 * ("Switchyard proxy as an xDS client").
 */
import { isIP } from 'node:net';
import { validate } from '../../config/problems.ts';
import { RETRY_CONDITIONS } from '../../config/resilience-schema.ts';
import { configSchema, LB_POLICIES, type ClusterConfig, type LbPolicyName, type RouteConfig } from '../../config/schema.ts';
import { POLICIES } from '../../balancer/registry.ts';
import type { EndpointAddress } from '../../discovery/source.ts';
import { SWITCHYARD_METADATA } from '../resources.ts';

/** A resource the proxy cannot apply; the message is the NACK's error_detail. */
export class XdsRejection extends Error {
  override readonly name = 'XdsRejection';
}

/** The routes and clusters xDS gives a proxy, validated: what replaces the config file's `routes` and `clusters`. */
export interface XdsConfigPart {
  readonly routes: RouteConfig[];
  readonly clusters: ClusterConfig[];
}

export interface TranslatedCluster {
  readonly name: string;
  /** The ClusterLoadAssignment holding its endpoints: eds_cluster_config.service_name, else the cluster's name. */
  readonly serviceName: string;
  readonly policy: LbPolicyName;
  /** Config-file input (durations as strings), without hash_header: the routes give that. */
  readonly config: Record<string, unknown>;
}

export interface TranslatedRoute {
  /** `RouteConfiguration "rc": virtual_hosts[0].routes[2]`, for messages. */
  readonly where: string;
  /** The route's cluster; with weighted_clusters, the first of them. */
  readonly cluster: string;
  /** Every cluster the route sends to (one, or each of weighted_clusters). */
  readonly clusters: readonly string[];
  /** The first header hash_policy, lower-cased. */
  readonly hashHeader: string | undefined;
  /** Config-file input for this route. */
  readonly config: Record<string, unknown>;
}

export interface TranslatedRouteConfig {
  readonly name: string;
  readonly routes: readonly TranslatedRoute[];
}

type Obj = Record<string, unknown>;

/** Envoy's lb_policy values, read back as the Switchyard policy each names exactly (src/balancer/registry.ts). */
const POLICY_BY_ENUM: Readonly<Record<string, LbPolicyName>> = Object.fromEntries(POLICIES.flatMap((policy) => (policy.xds.exact === undefined ? [] : [[policy.xds.exact, policy.name]])));

/** RouteAction fields whose meaning Switchyard cannot honour: refused rather than silently dropped. */
const UNSUPPORTED_ROUTE_ACTION = [
  'prefix_rewrite', 'regex_rewrite', 'path_rewrite_policy', 'host_rewrite_literal', 'auto_host_rewrite', 'host_rewrite_header',
  'host_rewrite_path_regex', 'request_mirror_policies', 'cluster_header', 'cluster_specifier_plugin',
  'inline_cluster_specifier_plugin',
];
const ROUTE_MATCH_FIELDS = new Set(['prefix', 'path', 'safe_regex', 'path_specifier', 'headers', 'grpc', 'case_sensitive']);

/** One Cluster resource on its own. */
export function translateCluster(name: string, message: Obj): TranslatedCluster {
  const fail = (field: string, why: string): never => {
    throw new XdsRejection(`Cluster "${name}": ${field}: ${why}`);
  };
  if (message.cluster_type !== undefined) fail('cluster_type', 'custom cluster types are not supported; use type EDS');
  const type = typeof message.type === 'string' ? message.type : 'STATIC';
  if (type !== 'EDS') fail('type', `${type} is not supported: Switchyard takes EDS clusters, whose endpoints come from a ClusterLoadAssignment`);
  const eds = obj(message.eds_cluster_config);
  const source = obj(eds?.eds_config);
  if (source && source.ads === undefined && source.self === undefined) {
    fail('eds_cluster_config.eds_config', `${String(source.config_source_specifier ?? 'an empty config source')} is not supported: endpoints must come over the same ADS stream (ads: {})`);
  }
  const serviceName = str(eds?.service_name) || name;
  if (message.load_balancing_policy !== undefined) fail('load_balancing_policy', `is not supported; set lb_policy (and metadata.filter_metadata["${SWITCHYARD_METADATA}"].lb_policy for Switchyard's own policies)`);
  if (message.transport_socket !== undefined || (Array.isArray(message.transport_socket_matches) && message.transport_socket_matches.length > 0)) {
    fail('transport_socket', 'upstream TLS from xDS is not supported: the endpoints of xDS clusters are reached over h2c');
  }

  let policy: LbPolicyName;
  const metadataPolicy = obj(obj(obj(obj(message.metadata)?.filter_metadata)?.[SWITCHYARD_METADATA])?.fields)?.lb_policy;
  if (metadataPolicy !== undefined) {
    const field = `metadata.filter_metadata["${SWITCHYARD_METADATA}"].lb_policy`;
    const value = obj(metadataPolicy)?.stringValue;
    if (typeof value !== 'string') return fail(field, 'expected a string value');
    if (!(LB_POLICIES as readonly string[]).includes(value)) return fail(field, `unknown policy "${value}" (expected one of ${LB_POLICIES.join(', ')})`);
    policy = value as LbPolicyName;
  } else {
    const named = typeof message.lb_policy === 'string' ? message.lb_policy : 'ROUND_ROBIN';
    policy = POLICY_BY_ENUM[named] ?? fail('lb_policy', `${named} is not supported (expected one of ${Object.keys(POLICY_BY_ENUM).join(', ')})`);
  }

  const config: Obj = { name, lb_policy: policy, eds: { service_name: serviceName } };
  const connectTimeout = durationMs(message.connect_timeout);
  if (connectTimeout !== undefined) config.connect_timeout = `${connectTimeout}ms`;
  if (policy === 'ring_hash') {
    const ringSize = wrappedNumber(obj(message.ring_hash_lb_config)?.minimum_ring_size);
    if (ringSize !== undefined) config.ring_size = ringSize;
  }
  if (policy === 'least_request') {
    const bias = obj(obj(message.least_request_lb_config)?.active_request_bias)?.default_value;
    if (typeof bias === 'number') config.active_request_bias = bias;
  }
  const thresholds = array(obj(message.circuit_breakers)?.thresholds).map(obj).find((t) => t && (t.priority === undefined || t.priority === 'DEFAULT'));
  if (thresholds) {
    const breakers: Obj = {};
    for (const field of ['max_connections', 'max_pending_requests', 'max_requests', 'max_retries']) {
      const value = wrappedNumber(thresholds[field]);
      if (value !== undefined) breakers[field] = value;
    }
    if (Object.keys(breakers).length > 0) config.circuit_breakers = breakers;
  }
  return { name, serviceName, policy, config };
}

/**
 * The RouteConfiguration on its own. Every virtual host is kept: routes of a
 * host whose domains are not just `*` carry them as match.hosts, and the
 * route table picks a host by :authority as Envoy does.
 */
export function translateRouteConfiguration(message: Obj): TranslatedRouteConfig {
  const name = str(message.name) ?? '';
  const hosts = array(message.virtual_hosts).map((host) => obj(host) ?? {});
  const routes = hosts.flatMap((host, index) => {
    const domains = array(host.domains).filter((domain): domain is string => typeof domain === 'string');
    const where = `RouteConfiguration "${name}": virtual_hosts[${index}]`;
    if (domains.length === 0) throw new XdsRejection(`${where}.domains: must name at least one domain`);
    const scoped = domains.length === 1 && domains[0] === '*' ? undefined : domains;
    return array(host.routes).map((route, i) => translateRoute(obj(route) ?? {}, `${where}.routes[${i}]`, scoped));
  });
  return { name, routes };
}

function translateRoute(route: Obj, where: string, hosts: readonly string[] | undefined): TranslatedRoute {
  const fail = (field: string, why: string): never => {
    throw new XdsRejection(`${where}.${field}: ${why}`);
  };
  const action = str(route.action);
  if (action !== 'route') fail(action ?? 'route', `${action === undefined ? 'missing' : 'not supported'}: a route must forward to a cluster (route.cluster)`);
  const forward = obj(route.route)!;
  const specifier = str(forward.cluster_specifier);
  if (specifier !== 'cluster' && specifier !== 'weighted_clusters') fail(`route.${specifier ?? 'cluster'}`, specifier === undefined ? 'missing: name the cluster to forward to' : 'is not supported: route to one cluster (route.cluster) or weighted_clusters');
  const target = specifier === 'cluster' ? { cluster: str(forward.cluster) } : { weighted_clusters: translateWeightedClusters(obj(forward.weighted_clusters) ?? {}, (why) => fail('route.weighted_clusters', why)) };
  if (target.cluster === '') return fail('route.cluster', 'must not be empty');
  for (const field of UNSUPPORTED_ROUTE_ACTION) if (forward[field] !== undefined) fail(`route.${field}`, 'is not supported');

  const match = obj(route.match) ?? {};
  for (const field of Object.keys(match)) if (!ROUTE_MATCH_FIELDS.has(field)) fail(`match.${field}`, 'is not supported (Switchyard matches path, prefix, safe_regex and headers)');
  if (obj(match.case_sensitive)?.value === false) fail('match.case_sensitive', 'false is not supported: gRPC paths match case-sensitively');
  const pathMatch: Obj = typeof match.path === 'string' ? { method: match.path }
    : typeof match.prefix === 'string' ? { prefix: match.prefix === '' ? '/' : match.prefix }
    : typeof obj(match.safe_regex)?.regex === 'string' ? { path_regex: str(obj(match.safe_regex)!.regex) }
    : fail('match', 'needs prefix, path or safe_regex');
  const headers = array(match.headers).map((header, i) => translateHeaderMatch(obj(header) ?? {}, (why) => fail(`match.headers[${i}]`, why)));

  const config: Obj = { match: { ...pathMatch, headers, ...(hosts && { hosts }) }, ...target };
  const name = str(route.name);
  if (name) config.name = name;
  const limits = obj(forward.max_stream_duration);
  const timeout = durationMs(limits?.grpc_timeout_header_max);
  // 0 means "the client's grpc-timeout as it is": no cap.
  if (timeout !== undefined && timeout > 0) config.timeout = `${timeout}ms`;
  const maxDuration = durationMs(limits?.max_stream_duration);
  if (maxDuration !== undefined && maxDuration > 0) config.max_stream_duration = `${maxDuration}ms`;
  const retry = obj(forward.retry_policy);
  if (retry) config.retry_policy = translateRetryPolicy(retry, (field, why) => fail(`route.retry_policy.${field}`, why));
  const requestHeaders = translateHeaderEdit(route.request_headers_to_add, route.request_headers_to_remove, (field, why) => fail(`request_headers_to_${field}`, why));
  if (requestHeaders) config.request_headers = requestHeaders;
  const responseHeaders = translateHeaderEdit(route.response_headers_to_add, route.response_headers_to_remove, (field, why) => fail(`response_headers_to_${field}`, why));
  if (responseHeaders) config.response_headers = responseHeaders;

  const webProtocols = obj(obj(obj(obj(obj(route.metadata)?.filter_metadata)?.[SWITCHYARD_METADATA])?.fields)?.web_protocols);
  if (webProtocols !== undefined) {
    const value = webProtocols.stringValue;
    if (typeof value !== 'string') fail(`metadata.filter_metadata["${SWITCHYARD_METADATA}"].web_protocols`, 'expected a string value');
    config.web = { protocols: (value as string).split(',').map((name) => name.trim()).filter(Boolean) };
  }

  const hashHeader = array(forward.hash_policy).map((policy) => str(obj(obj(policy)?.header)?.header_name)).find((header) => header !== undefined);
  const clusters = target.weighted_clusters?.map((entry) => entry.cluster) ?? [target.cluster!];
  return { where, cluster: clusters[0]!, clusters, hashHeader: hashHeader?.toLowerCase(), config };
}

function translateWeightedClusters(weighted: Obj, fail: (why: string) => never): { cluster: string; weight: number }[] {
  const entries = array(weighted.clusters).map((item, i) => {
    const entry = obj(item) ?? {};
    const cluster = str(entry.name);
    if (!cluster) return fail(`clusters[${i}].name must not be empty`);
    for (const field of ['cluster_header', 'request_headers_to_add', 'request_headers_to_remove', 'response_headers_to_add', 'response_headers_to_remove', 'typed_per_filter_config']) {
      const value = entry[field];
      if (value !== undefined && !(Array.isArray(value) && value.length === 0) && !(obj(value) && Object.keys(value as Obj).length === 0)) fail(`clusters[${i}].${field} is not supported`);
    }
    return { cluster, weight: wrappedNumber(entry.weight) ?? 0 };
  });
  if (entries.length === 0) return fail('must name at least one cluster');
  return entries;
}

/** request_headers_to_add/remove (or response_): append_action OVERWRITE_IF_EXISTS_OR_ADD is a set, APPEND_IF_EXISTS_OR_ADD an add. */
function translateHeaderEdit(toAdd: unknown, toRemove: unknown, fail: (field: string, why: string) => never): Obj | undefined {
  const set: Obj[] = [];
  const add: Obj[] = [];
  array(toAdd).forEach((item, i) => {
    const option = obj(item) ?? {};
    const header = obj(option.header) ?? {};
    const name = str(header.key);
    if (!name) return fail(`add[${i}].header.key`, 'must not be empty');
    if (header.raw_value !== undefined && header.value === undefined) fail(`add[${i}].header.raw_value`, 'is not supported: send value');
    const value = str(header.value) ?? '';
    const appendAction = str(option.append_action) ?? (obj(option.append)?.value === false ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD');
    if (appendAction === 'OVERWRITE_IF_EXISTS_OR_ADD') set.push({ name, value });
    else if (appendAction === 'APPEND_IF_EXISTS_OR_ADD') add.push({ name, value });
    else fail(`add[${i}].append_action`, `${appendAction} is not supported (OVERWRITE_IF_EXISTS_OR_ADD or APPEND_IF_EXISTS_OR_ADD)`);
    if (option.keep_empty_value === true) fail(`add[${i}].keep_empty_value`, 'is not supported');
  });
  const remove = array(toRemove).filter((name): name is string => typeof name === 'string');
  return set.length + add.length + remove.length === 0 ? undefined : { remove, set, add };
}

function translateHeaderMatch(header: Obj, fail: (why: string) => never): Obj {
  const name = str(header.name);
  if (!name) return fail('name must not be empty');
  const out: Obj = { name };
  if (header.invert_match === true) out.invert = true;
  if (header.treat_missing_header_as_empty === true) fail('treat_missing_header_as_empty is not supported');
  const strings = obj(header.string_match);
  if (strings?.ignore_case === true) fail('string_match.ignore_case is not supported');
  const exact = str(header.exact_match) ?? str(strings?.exact);
  const prefix = str(header.prefix_match) ?? str(strings?.prefix);
  const suffix = str(header.suffix_match) ?? str(strings?.suffix);
  const contains = str(header.contains_match) ?? str(strings?.contains);
  const regex = str(obj(header.safe_regex_match)?.regex) ?? str(obj(strings?.safe_regex)?.regex);
  if (exact !== undefined) out.exact = exact;
  else if (prefix !== undefined) out.prefix = prefix;
  else if (suffix !== undefined) out.regex = `${escapeRegex(suffix)}$`;
  else if (contains !== undefined) out.regex = escapeRegex(contains);
  else if (regex !== undefined) out.regex = regex;
  else if (header.range_match !== undefined) fail('range_match is not supported');
  // No specifier, as in Envoy, means the header must be present.
  else out.present = typeof header.present_match === 'boolean' ? header.present_match : true;
  return out;
}

function translateRetryPolicy(retry: Obj, fail: (field: string, why: string) => never): Obj {
  const conditions = (str(retry.retry_on) ?? '').split(',').map((condition) => condition.trim()).filter((condition) => condition !== '');
  const retryOn = conditions.map((condition) => {
    const name = condition.replace(/-/g, '_');
    return (RETRY_CONDITIONS as readonly string[]).includes(name) ? name
      : fail('retry_on', `"${condition}" is not supported (Switchyard retries on ${RETRY_CONDITIONS.map((c) => c.replace(/_/g, '-')).join(', ')})`);
  });
  if (retryOn.length === 0) return fail('retry_on', 'must name at least one condition');
  const out: Obj = { retry_on: retryOn, num_retries: wrappedNumber(retry.num_retries) ?? 1 };
  const perTry = durationMs(retry.per_try_timeout);
  if (perTry !== undefined && perTry > 0) out.per_try_timeout = `${perTry}ms`;
  const backOff = obj(retry.retry_back_off);
  const base = durationMs(backOff?.base_interval);
  const max = durationMs(backOff?.max_interval);
  if (base !== undefined) out.base_interval = `${base}ms`;
  if (max !== undefined) out.max_interval = `${max}ms`;
  return out;
}

/**
 * A ClusterLoadAssignment's endpoints. HEALTHY, UNKNOWN and DEGRADED
 * endpoints serve; DRAINING ones finish what they have; UNHEALTHY and
 * TIMEOUT ones are left out. Priorities are not used: every endpoint takes
 * traffic. The same address twice counts once, with the weights added.
 */
export function translateLoadAssignment(name: string, message: Obj): EndpointAddress[] {
  const merged = new Map<string, EndpointAddress>();
  array(message.endpoints).forEach((entry, i) => {
    const locality = obj(entry) ?? {};
    const zone = str(obj(locality.locality)?.zone) || undefined;
    array(locality.lb_endpoints).forEach((item, j) => {
      const where = `ClusterLoadAssignment "${name}": endpoints[${i}].lb_endpoints[${j}]`;
      const fail = (field: string, why: string): never => {
        throw new XdsRejection(`${where}.${field}: ${why}`);
      };
      const lbEndpoint = obj(item) ?? {};
      const status = str(lbEndpoint.health_status) ?? 'UNKNOWN';
      if (status === 'UNHEALTHY' || status === 'TIMEOUT') return;
      if (lbEndpoint.endpoint === undefined) fail(lbEndpoint.endpoint_name !== undefined ? 'endpoint_name' : 'endpoint', lbEndpoint.endpoint_name !== undefined ? 'named endpoints are not supported: send the endpoint' : 'missing');
      const address = obj(obj(lbEndpoint.endpoint)?.address);
      const socket = obj(address?.socket_address);
      if (!socket) return fail('endpoint.address', `${str(address?.address) ?? 'an empty address'} is not supported: expected socket_address`);
      const field = 'endpoint.address.socket_address';
      const host = str(socket.address) ?? '';
      if (isIP(host) === 0) fail(`${field}.address`, `"${host}" is not an IP address`);
      if (socket.protocol !== undefined && socket.protocol !== 'TCP') fail(`${field}.protocol`, `${String(socket.protocol)} is not supported: expected TCP`);
      if (socket.resolver_name !== undefined) fail(`${field}.resolver_name`, 'is not supported');
      const port = socket.port_value;
      if (typeof port !== 'number' || port < 1 || port > 65535) fail(`${field}.port_value`, `expected a port from 1 to 65535, got ${socket.named_port !== undefined ? `named_port "${String(socket.named_port)}"` : String(port ?? 'none')}`);
      const weight = wrappedNumber(lbEndpoint.load_balancing_weight) ?? 1;
      if (weight < 1 || weight > 1_000_000) fail('load_balancing_weight', `expected 1 to 1000000, got ${weight}`);
      const key = host.includes(':') ? `[${host}]:${String(port)}` : `${host}:${String(port)}`;
      const previous = merged.get(key);
      const health = status === 'DRAINING' && previous?.health !== 'healthy' ? 'draining' as const : 'healthy' as const;
      merged.set(key, { host, port: port as number, weight: weight + (previous?.weight ?? 0), zone: zone ?? previous?.zone, health });
    });
  });
  return [...merged.values()];
}

/** The listener that stands in for the real ones while xDS routes and clusters are checked against the config schema. */
const VALIDATION_LISTENER = { name: 'xds-validation', port: 0, plaintext: true };

/**
 * The routes of `routeConfig` and the clusters they use, checked as a config
 * file would be. Clusters no route uses are left out. Throws an XdsRejection
 * naming the resource and field when a route names a cluster that is not in
 * `clusters`, a ring_hash cluster has no single header to hash, or the schema
 * refuses a value.
 */
export function composeConfig(routeConfig: TranslatedRouteConfig, clusters: ReadonlyMap<string, TranslatedCluster>): XdsConfigPart {
  const users = new Map<string, TranslatedRoute[]>();
  for (const route of routeConfig.routes) {
    for (const cluster of route.clusters) {
      if (!clusters.has(cluster)) {
        const field = route.clusters.length === 1 && route.config.cluster !== undefined ? 'route.cluster' : 'route.weighted_clusters';
        throw new XdsRejection(`${route.where}.${field}: no Cluster named "${cluster}" (the control plane sent ${clusters.size === 0 ? 'none' : [...clusters.keys()].map((name) => `"${name}"`).join(', ')})`);
      }
      users.set(cluster, [...(users.get(cluster) ?? []), route]);
    }
  }
  const used = [...users.keys()].sort().map((name) => clusters.get(name)!);
  const clusterInputs = used.map((cluster) => {
    if (cluster.policy !== 'ring_hash') return cluster.config;
    const routes = users.get(cluster.name)!;
    const headers = [...new Set(routes.map((route) => route.hashHeader))];
    if (headers.includes(undefined)) {
      const without = routes.filter((route) => route.hashHeader === undefined).map((route) => route.where);
      throw new XdsRejection(`Cluster "${cluster.name}": lb_policy ring_hash needs a header hash_policy on every route that uses it (none on ${without.join(', ')})`);
    }
    if (headers.length > 1) {
      throw new XdsRejection(`Cluster "${cluster.name}": its routes hash on different headers (${headers.map((h) => `"${h}"`).join(', ')}); Switchyard hashes one header per cluster`);
    }
    return { ...cluster.config, hash_header: headers[0] };
  });
  const result = validate(configSchema, { listeners: [VALIDATION_LISTENER], routes: routeConfig.routes.map((route) => route.config), clusters: clusterInputs });
  if ('data' in result) return { routes: result.data.routes, clusters: result.data.clusters };
  const messages = result.problems.map((problem) => {
    const [section, index, ...rest] = problem.path;
    const field = problem.key === undefined ? rest : [...rest, problem.key];
    if (section === 'routes' && typeof index === 'number') return `${routeConfig.routes[index]!.where}.${routeField(field)}: ${problem.message}`;
    if (section === 'clusters' && typeof index === 'number') return `Cluster "${used[index]!.name}": ${clusterField(field)}: ${problem.message}`;
    return `${problem.path.join('.')}: ${problem.message}`;
  });
  throw new XdsRejection(messages.join('; '));
}

/** What a proxy serves before any xDS config has arrived: every RPC is answered UNAVAILABLE, saying so. */
export function pendingConfig(server: string): XdsConfigPart {
  const result = validate(configSchema, {
    listeners: [VALIDATION_LISTENER],
    routes: [{ name: 'xds_pending', match: { prefix: '/' }, direct_response: { code: 'UNAVAILABLE', message: `the xDS config has not arrived from the control plane (${server}) yet` } }],
  });
  if (!('data' in result)) throw new Error('pendingConfig: the placeholder route does not validate');
  return { routes: result.data.routes, clusters: [] };
}

export function samePart(a: XdsConfigPart | undefined, b: XdsConfigPart | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A Switchyard route field, as the xDS field it came from. */
function routeField(path: readonly PropertyKey[]): string {
  const [first, second, ...rest] = path.map(String);
  if (first === 'match' && second === 'method') return 'match.path';
  if (first === 'match' && second === 'path_regex') return 'match.safe_regex.regex';
  if (first === 'match' && second === 'hosts') return 'domains (of its virtual host)';
  if (first === 'match' && second === 'headers') return `match.headers[${rest[0] ?? ''}]`;
  if (first === 'match') return `match${second ? `.${second}` : ''}`;
  if (first === 'timeout') return 'route.max_stream_duration.grpc_timeout_header_max';
  if (first === 'max_stream_duration') return 'route.max_stream_duration.max_stream_duration';
  if (first === 'retry_policy') return `route.retry_policy${second ? `.${second}` : ''}`;
  if (first === 'cluster') return 'route.cluster';
  if (first === 'weighted_clusters') return `route.weighted_clusters.clusters${second ? `[${second}]` : ''}`;
  if (first === 'request_headers' || first === 'response_headers') return `${first}_to_${second === 'remove' ? 'remove' : 'add'}`;
  if (first === 'web') return `metadata.filter_metadata["${SWITCHYARD_METADATA}"].web_protocols`;
  return [first, second, ...rest].filter((key) => key !== undefined).join('.') || '(route)';
}

function clusterField(path: readonly PropertyKey[]): string {
  const [first, second] = path.map(String);
  if (first === 'ring_size') return 'ring_hash_lb_config.minimum_ring_size';
  if (first === 'active_request_bias') return 'least_request_lb_config.active_request_bias.default_value';
  if (first === 'circuit_breakers') return `circuit_breakers.thresholds[DEFAULT]${second ? `.${second}` : ''}`;
  if (first === 'hash_header') return 'hash_policy (of the routes using it)';
  return path.map(String).join('.') || '(cluster)';
}

function obj(value: unknown): Obj | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Obj) : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function array(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A UInt32Value or UInt64Value ({ value }), or a bare number; 64-bit values arrive as strings. */
function wrappedNumber(value: unknown): number | undefined {
  const inner = obj(value) ? obj(value)!.value : value;
  if (inner === undefined) return obj(value) ? 0 : undefined;
  const number = typeof inner === 'string' ? Number(inner) : inner;
  return typeof number === 'number' && Number.isFinite(number) ? number : undefined;
}

/** A google.protobuf.Duration in whole milliseconds (rounded up, so 1ns is not 0). */
function durationMs(value: unknown): number | undefined {
  const duration = obj(value);
  if (!duration) return undefined;
  const seconds = Number(duration.seconds ?? 0);
  const nanos = Number(duration.nanos ?? 0);
  return Math.ceil(seconds * 1000 + nanos / 1e6);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
