/**
 * The shape of a Switchyard config file. Every object is strict: an unknown
 * key is an error, never silently ignored. Defaults are chosen to be safe for
 * a proxy in front of production gRPC services.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { duration, hostPattern, statusCode } from './schema-primitives.ts';
import { POLICIES, POLICY_NAMES, type PolicyName } from '../balancer/registry.ts';
import type { PolicyOption } from '../balancer/policy.ts';
import { clusterResilience, drainSettings, overloadSettings, retryPolicy } from './resilience-schema.ts';
import { authorizationSettings, certificateSettings, downstreamTlsFields, upstreamTlsFields } from './security-schema.ts';
import { adminSettings, healthSettings, metricsSettings } from './admin-schema.ts';
import { http2AbuseFields, listenerAbuseFields, routeRateLimit } from './abuse-schema.ts';
import { tracingSettings } from './tracing-schema.ts';
import { kubernetesDiscovery } from './kubernetes-schema.ts';
import { edsDiscovery, xdsClientSettings } from './xds-client-schema.ts';
import { listenerWebSettings, routeWebSettings, webSettings } from './web-schema.ts';
import { checkWebSocketReferences, listenerWebSocketFields, websocketSettings } from './websocket-schema.ts';

/** Listener ports may be 0 (the OS picks one: useful in tests); an upstream port never is. */
const port = z.number().int().min(0).max(65535);
const upstreamPort = z.number().int().min(1).max(65535);
const host = z.string().min(1);

const serverTls = z.strictObject({
  /** PEM certificate chain presented to clients. */
  cert_file: z.string().min(1),
  /** PEM private key for cert_file. */
  key_file: z.string().min(1),
  ...downstreamTlsFields,
}).superRefine((value, ctx) => {
  if (value.client_certificates !== undefined && value.client_certificates !== 'none' && value.client_ca_file === undefined) {
    ctx.addIssue({ code: 'custom', path: ['client_ca_file'], message: `client_certificates: ${value.client_certificates} needs client_ca_file, the CA that signs client certificates` });
  }
}).transform((value) => ({ ...value, client_certificates: value.client_certificates ?? (value.client_ca_file === undefined ? 'none' as const : 'required' as const) }));

const http2Limits = z.strictObject({
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised to each client connection. */
  max_concurrent_streams: z.number().int().min(1).max(2 ** 31 - 1).default(100),
  /** Per-stream flow-control window (SETTINGS_INITIAL_WINDOW_SIZE), bytes: the most a client may send on a stream before the proxy passes it on, so the most the proxy holds per stream for a slow backend. */
  initial_stream_window: z.number().int().min(65_535).max(2 ** 31 - 1).default(64 << 10),
  /** Connection-level flow-control window, bytes. */
  connection_window: z.number().int().min(65_535).max(2 ** 31 - 1).default(16 << 20),
  /** Largest header block accepted (SETTINGS_MAX_HEADER_LIST_SIZE), bytes. */
  max_header_list_size: z.number().int().min(1024).max(2 ** 32 - 1).default(16 << 10),
  ...http2AbuseFields,
});

const listener = z
  .strictObject({
    name: z.string().min(1),
    address: host.default('127.0.0.1'),
    port,
    /** TLS 1.3 with ALPN h2. Required unless `plaintext: true`. */
    tls: serverTls.optional(),
    /** Cleartext HTTP/2 with prior knowledge (h2c). For local use only; must be asked for. */
    plaintext: z.boolean().default(false),
    http2: http2Limits.prefault({}),
    /** Send GOAWAY to a client connection this old (±10% jitter), so clients re-resolve and spread over replicas. Unset: never. */
    max_connection_age: duration.optional(),
    /** After that GOAWAY, in-flight RPCs get this long before the connection is closed. */
    max_connection_age_grace: duration.default(30_000),
    /** Add `x-switchyard-upstream: host:port` (the endpoint that served it) to each forwarded RPC's response, for `switchyard verify`. Off: it reveals internal addresses. */
    expose_upstream: z.boolean().default(false),
    /**
     * L7 proxies in front of this listener trusted to set x-forwarded-for and the other forwarding
     * headers. 0: the peer is the client, and what it sent of them is replaced (docs/security.md).
     */
    trusted_proxy_hops: z.number().int().min(0).max(10).default(0),
    /** Browser protocols (gRPC-Web, Connect) for every route on this listener, and CORS; see docs/grpc-web.md. */
    web: listenerWebSettings.prefault({}),
    ...listenerAbuseFields,
    ...listenerWebSocketFields,
  })
  .superRefine((value, ctx) => {
    if (value.tls && value.plaintext) {
      ctx.addIssue({ code: 'custom', path: ['plaintext'], message: 'a listener is either tls or plaintext, not both' });
    }
    if (!value.tls && !value.plaintext) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'set tls (cert_file, key_file), or plaintext: true for a cleartext h2c listener' });
    }
  });

const headerMatch = z
  .strictObject({
    name: z.string().min(1).transform((name) => name.toLowerCase()),
    exact: z.string().optional(),
    prefix: z.string().optional(),
    regex: z.string().optional(),
    /** Matches when the header is present (true) or absent (false). */
    present: z.boolean().optional(),
    /** Inverts the result of the match. */
    invert: z.boolean().default(false),
  })
  .superRefine((value, ctx) => {
    const kinds = ['exact', 'prefix', 'regex', 'present'].filter((k) => value[k as keyof typeof value] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `a header match needs exactly one of exact, prefix, regex, present (got ${kinds.length ? kinds.join(', ') : 'none'})` });
    }
    if (value.regex !== undefined) {
      try {
        new RegExp(value.regex);
      } catch (error) {
        ctx.addIssue({ code: 'custom', path: ['regex'], message: `invalid regular expression: ${(error as Error).message}` });
      }
    }
  });

/** A JavaScript regular expression, checked at load. */
const regexSource = z.string().superRefine((value, ctx) => {
  try {
    new RegExp(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `invalid regular expression: ${(error as Error).message}` });
  }
});

/** Headers a route may not edit: HTTP/2 pseudo-headers and connection-specific ones (RFC 9113 §8.2.2), and what gRPC framing needs. */
const UNEDITABLE_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'content-type', 'grpc-timeout', 'grpc-status', 'grpc-message']);
const editableHeaderName = z.string().min(1).transform((name) => name.toLowerCase())
  .pipe(z.string().regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, 'expected an HTTP header name').refine((name) => !UNEDITABLE_HEADERS.has(name), { error: (issue) => `"${String(issue.input)}" cannot be edited by a route` }));
const headerValuePair = z.strictObject({ name: editableHeaderName, value: z.string() });

/** Edits to a message's headers, applied in this order: remove, set (replaces), add (appends a value). */
const headerEdit = z.strictObject({
  remove: z.array(editableHeaderName).default([]),
  set: z.array(headerValuePair).default([]),
  add: z.array(headerValuePair).default([]),
});

/** One backend of a route that splits its RPCs: a cluster and its share. */
const weightedCluster = z.strictObject({
  cluster: z.string().min(1),
  /** Relative share; 0: none. */
  weight: z.number().int().min(0).max(1_000_000),
});

const GRPC_METHOD = /^\/[^/\s]+\/[^/\s]+$/;
const GRPC_SERVICE = /^[^/\s]+$/;

const routeMatch = z
  .strictObject({
    /** Exact method, `/pkg.Service/Method`. */
    method: z.string().regex(GRPC_METHOD, 'expected "/package.Service/Method"').optional(),
    /** Every method of one service, `pkg.Service`. */
    service: z.string().regex(GRPC_SERVICE, 'expected "package.Service" (no slashes)').optional(),
    /** Any path starting with this, e.g. `/pkg.` or `/` for everything. */
    prefix: z.string().startsWith('/', 'expected a path prefix starting with "/"').optional(),
    /** A regular expression the whole path must match (anchored at both ends), e.g. `/[^/]+/Get`. */
    path_regex: regexSource.optional(),
    headers: z.array(headerMatch).default([]),
    /**
     * The :authority (without its port) this route serves: `example.com`, `*.example.com` (any name
     * ending in `.example.com`) or `*`. Routes with the same list form one virtual host; see
     * src/router/virtual-hosts.ts for how one is chosen. Unset: every authority.
     */
    hosts: z.array(hostPattern).min(1).optional(),
  })
  .superRefine((value, ctx) => {
    const kinds = ['method', 'service', 'prefix', 'path_regex'].filter((k) => value[k as 'method'] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `a route match needs exactly one of method, service, prefix, path_regex (got ${kinds.length ? kinds.join(', ') : 'none'})` });
    }
  });

const route = z
  .strictObject({
    name: z.string().min(1).optional(),
    match: routeMatch,
    /** Forward to this cluster. */
    cluster: z.string().min(1).optional(),
    /** Split RPCs over several clusters by weight, each RPC on its own (smooth weighted round robin). */
    weighted_clusters: z.array(weightedCluster).min(1).refine((list) => list.some((entry) => entry.weight > 0), 'at least one weight must be above 0').optional(),
    /** Edits to the request headers sent upstream. */
    request_headers: headerEdit.optional(),
    /** Edits to the response headers sent to the client. */
    response_headers: headerEdit.optional(),
    /** Upper bound on each RPC's deadline; forwarded upstream in grpc-timeout. Unset: the client's deadline alone. */
    timeout: duration.optional(),
    /** Hard cap on a stream's lifetime, whatever its deadline. Unset: no cap. */
    max_stream_duration: duration.optional(),
    /** Token buckets for this route's RPCs, answered RESOURCE_EXHAUSTED beyond them. Unset: no limit. */
    rate_limit: routeRateLimit.optional(),
    /** Retries for RPCs on this route; unset: only transparent retries of streams the backend never saw. */
    retry_policy: retryPolicy.optional(),
    /** Browser protocols and CORS for this route, overriding the listener's; see docs/grpc-web.md. */
    web: routeWebSettings.optional(),
    /** Answer directly, without a backend. */
    direct_response: z
      .strictObject({ code: statusCode, message: z.string().default('') })
      .optional(),
  })
  .superRefine((value, ctx) => {
    const actions = [value.cluster, value.weighted_clusters, value.direct_response].filter((action) => action !== undefined);
    if (actions.length !== 1) {
      ctx.addIssue({ code: 'custom', message: 'a route needs exactly one action: cluster, weighted_clusters or direct_response' });
    }
  });

const staticEndpoint = z.strictObject({
  address: host,
  port: upstreamPort,
  weight: z.number().int().min(1).max(1_000_000).default(1),
});

const dnsDiscovery = z.strictObject({
  /** Name to resolve, typically a headless Service: `echo.default.svc.cluster.local`. */
  name: host,
  port: upstreamPort,
  /** Address families to resolve. */
  families: z.array(z.enum(['ipv4', 'ipv6'])).min(1).default(['ipv4', 'ipv6']),
  refresh_interval: duration.default(5_000),
  /** DNS servers as `ip` or `ip:port`; default: the system resolver's. */
  servers: z
    .array(z.string().refine(isDnsServer, { error: (issue) => `expected "ip" or "ip:port" ("[ipv6]:port" for IPv6), got "${String(issue.input)}"` }))
    .min(1)
    .optional(),
});

/** The forms dns.Resolver#setServers accepts; checked here so a typo fails at load, not at the first refresh. */
function isDnsServer(text: string): boolean {
  if (isIP(text) !== 0) return true;
  const match = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  if (!match) return false;
  const ip = match[1] ?? match[2]!;
  const portNumber = Number(match[3]);
  return isIP(ip) === (match[1] !== undefined ? 6 : 4) && portNumber >= 1 && portNumber <= 65535;
}

const upstreamTls = z.strictObject({
  /** CA bundle that must have signed the backend's certificate. */
  ca_file: z.string().min(1),
  /** Name checked against the backend certificate (and sent as SNI); default: the endpoint address. */
  server_name: z.string().min(1).optional(),
  /** Client certificate for mTLS to the backend. */
  cert_file: z.string().min(1).optional(),
  key_file: z.string().min(1).optional(),
  ...upstreamTlsFields,
}).superRefine((value, ctx) => {
  if ((value.cert_file === undefined) !== (value.key_file === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'cert_file and key_file go together' });
  }
});

/** `lb_policy`: the policies src/balancer/registry.ts lists. */
export const LB_POLICIES = POLICY_NAMES;

/** Each policy's tuning options, as cluster fields, from the policies' own definitions. */
const policyOptionFields = Object.fromEntries(POLICIES.flatMap((policy) => Object.entries(policy.options).map(([name, option]) => [name, policyOptionSchema(option)])));

/** Every policy's options, by name, as the registry declares them. */
type DeclaredOptions = UnionToIntersection<(typeof POLICIES)[number]['options']>;
type UnionToIntersection<U> = (U extends unknown ? (union: U) => void : never) extends (intersection: infer I) => void ? I : never;
/** The zod field each declared option becomes, so the config type knows them. */
type PolicyOptionFields = { [Name in keyof DeclaredOptions]: DeclaredOptions[Name] extends { kind: 'duration' } ? ReturnType<typeof duration.default> : z.ZodDefault<z.ZodNumber> };

function policyOptionSchema(option: PolicyOption) {
  if (option.kind === 'duration') return duration.default(option.default);
  const number = option.kind === 'integer' ? z.number().int() : z.number();
  return number.min(option.min).max(option.max).default(option.default);
}

const cluster = z
  .strictObject({
    name: z.string().min(1),
    lb_policy: z.enum(LB_POLICIES).default('round_robin'),
    /** ring_hash: request header whose value is hashed; without it a random endpoint is picked. */
    hash_header: z.string().min(1).transform((name) => name.toLowerCase()).optional(),
    /** ring_size (ring_hash), active_request_bias (least_request), ewma_decay (peak_ewma): see each policy's file. */
    ...(policyOptionFields as unknown as PolicyOptionFields),
    endpoints: z.array(staticEndpoint).optional(),
    dns: dnsDiscovery.optional(),
    /** The EndpointSlices of a Kubernetes Service (src/discovery/kubernetes.ts). */
    kubernetes: kubernetesDiscovery.optional(),
    /** Set only by the xDS client: endpoints from the control plane's ClusterLoadAssignment (src/discovery/xds.ts). */
    eds: edsDiscovery.optional(),
    /** TLS to the backends; without it, h2c. */
    tls: upstreamTls.optional(),
    connect_timeout: duration.default(5_000),
    ...clusterResilience,
  })
  .superRefine((value, ctx) => {
    if ([value.endpoints, value.dns, value.kubernetes, value.eds].filter((source) => source !== undefined).length !== 1) {
      ctx.addIssue({ code: 'custom', message: 'a cluster needs exactly one endpoint source: endpoints, dns or kubernetes' });
    }
    if (value.lb_policy === 'ring_hash' && value.hash_header === undefined) {
      ctx.addIssue({ code: 'custom', path: ['hash_header'], message: 'ring_hash needs hash_header: the request header to hash' });
    }
    // Otherwise a forgotten `lb_policy: ring_hash` would silently lose session affinity.
    if (value.lb_policy !== 'ring_hash' && value.hash_header !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['hash_header'], message: `hash_header only applies to lb_policy ring_hash (this cluster uses ${value.lb_policy})` });
    }
  });

const accessLog = z.strictObject({
  /** off, stdout, or a file path. */
  output: z.string().min(1).default('off'),
});

/** The name of each entry of `list`; undefined for an entry whose name is missing or not a string. */
function namesOf(list: unknown): (string | undefined)[] {
  return Array.isArray(list) ? list.map((item: unknown) => (isRecord(item) && typeof item.name === 'string' ? item.name : undefined)) : [];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Cross-references between sections. Runs even when some entries failed to
 * parse (so one run reports everything), hence it reads the value defensively.
 */
function checkReferences(value: unknown, ctx: z.RefinementCtx): void {
  if (!isRecord(value)) return;
  const duplicates = (section: string, what: string) => {
    const seen = new Set<string>();
    namesOf(value[section]).forEach((name, i) => {
      if (name === undefined) return;
      if (seen.has(name)) ctx.addIssue({ code: 'custom', path: [section, i, 'name'], message: `duplicate ${what} name "${name}"` });
      seen.add(name);
    });
  };
  duplicates('clusters', 'cluster');
  duplicates('listeners', 'listener');
  duplicates('routes', 'route');

  const bound = new Map<string, number>();
  (Array.isArray(value.listeners) ? value.listeners : []).forEach((l: unknown, i) => {
    if (!isRecord(l) || typeof l.address !== 'string' || typeof l.port !== 'number' || l.port === 0) return;
    const key = `${l.address}:${l.port}`;
    const first = bound.get(key);
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['listeners', i, 'port'], message: `listeners[${first}] already listens on ${key}` });
    else bound.set(key, i);
  });

  if (value.xds !== undefined) {
    for (const section of ['routes', 'clusters']) {
      if (Array.isArray(value[section]) && value[section].length > 0) ctx.addIssue({ code: 'custom', path: [section], message: `with xds set, ${section} come from the control plane: remove the ${section} here (or the xds section)` });
    }
  }

  const clusterNames = namesOf(value.clusters);
  // A cluster whose name failed to parse may be the one a route means: say nothing rather than something wrong.
  if (clusterNames.includes(undefined)) return;
  const known = new Set(clusterNames);
  checkWebSocketReferences(value, known, ctx);
  (Array.isArray(value.routes) ? value.routes : []).forEach((r: unknown, i) => {
    if (isRecord(r) && typeof r.cluster === 'string' && !known.has(r.cluster)) {
      ctx.addIssue({ code: 'custom', path: ['routes', i, 'cluster'], message: `no cluster named "${r.cluster}" (clusters: ${[...known].join(', ') || 'none'})` });
    }
    if (isRecord(r) && Array.isArray(r.weighted_clusters)) {
      r.weighted_clusters.forEach((entry: unknown, j) => {
        if (isRecord(entry) && typeof entry.cluster === 'string' && !known.has(entry.cluster)) {
          ctx.addIssue({ code: 'custom', path: ['routes', i, 'weighted_clusters', j, 'cluster'], message: `no cluster named "${entry.cluster}" (clusters: ${[...known].join(', ') || 'none'})` });
        }
      });
    }
  });
}

/** A cluster and a route as the proxy config writes them; the control plane's config reuses both. */
export const clusterSchema = cluster;
export const routeSchema = route;

export const configSchema = z
  .strictObject({
    listeners: z.array(listener).min(1),
    routes: z.array(route).default([]),
    clusters: z.array(cluster).default([]),
    access_log: accessLog.prefault({}),
    drain: drainSettings.prefault({}),
    /** Refuse new RPCs past a memory limit rather than be killed for exceeding the container's. */
    overload: overloadSettings.prefault({}),
    /** The admin interface (metrics, /clusters, /drain, the dashboard); loopback only unless allow_remote. Unset: none. */
    admin: adminSettings.optional(),
    /** How metrics label methods; see docs/observability.md. */
    metrics: metricsSettings.prefault({}),
    /** Switchyard's own /ready and /live, on a listener of their own. Unset: none. */
    health: healthSettings.optional(),
    /** Reload the config when the file changes, as on SIGHUP. */
    watch_config: z.boolean().default(false),
    /** Per-RPC method authorization by caller identity; see docs/security.md. */
    authorization: authorizationSettings.prefault({}),
    certificates: certificateSettings.prefault({}),
    /** W3C traceparent propagation with a proxy span per RPC, and optional OpenTelemetry spans; see docs/tracing.md. */
    tracing: tracingSettings.prefault({}),
    /** WebSocket routes (HTTP/1.1 upgrades and RFC 8441 over HTTP/2) to clusters; see docs/websocket.md. */
    websocket: websocketSettings.prefault({}),
    /** Routes, clusters and endpoints from an xDS control plane instead of this file; see docs/control-plane.md. Unset: none. */
    xds: xdsClientSettings.optional(),
    /** What the browser protocols share: descriptor sets for Connect JSON; see docs/grpc-web.md. */
    web: webSettings.prefault({}),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine(checkReferences, { when: () => true });

export type SwitchyardConfig = z.output<typeof configSchema>;
export type ListenerConfig = SwitchyardConfig['listeners'][number];
export type RouteConfig = SwitchyardConfig['routes'][number];
export type ClusterConfig = SwitchyardConfig['clusters'][number];
export type HeaderMatchConfig = RouteConfig['match']['headers'][number];
export type HeaderEditConfig = NonNullable<RouteConfig['request_headers']>;
export type LbPolicyName = PolicyName;
