/**
 * The JSON the admin API answers with: what the proxy believes right now
 * (endpoints as discovery and health left them, routes as compiled), not
 * what the YAML said. Pure functions of the proxy's state.
 */
import type { Cluster } from '../cluster/cluster.ts';
import type { RouteConfig } from '../config/schema.ts';
import type { Route } from '../router/route-table.ts';
import type { BalanceWindow } from '../metrics/balance-window.ts';
import type { RecentChange } from '../metrics/telemetry.ts';
import type { LoadedCertificate } from '../security/certificate-expiry.ts';

export interface EndpointView {
  readonly address: string;
  /** Takes new RPCs now. */
  readonly available: boolean;
  readonly health: string;
  readonly healthCheckFailure: string | undefined;
  readonly ejected: boolean;
  readonly ejectionReason: string | undefined;
  readonly ejections: number;
  readonly inConnectBackoff: boolean;
  readonly weight: number;
  readonly configuredWeight: number;
  readonly activeRpcs: number;
  readonly totalRpcs: number;
  readonly latencyEwmaMs: number | undefined;
  readonly connections: number;
}

export interface ClusterView {
  readonly name: string;
  readonly policy: string;
  readonly discovery: 'static' | 'dns' | 'kubernetes' | 'xds';
  readonly activeRpcs: number;
  readonly endpoints: EndpointView[];
}

export function clusterView(cluster: Cluster): ClusterView {
  const health = new Map(cluster.healthSnapshot().map((view) => [view.key, view]));
  const endpoints = [...cluster.endpoints.values()].map((endpoint): EndpointView => {
    const view = health.get(endpoint.key);
    return {
      address: endpoint.key,
      available: view?.available ?? false,
      health: endpoint.health,
      healthCheckFailure: view?.healthCheck?.lastFailure,
      ejected: endpoint.ejected,
      ejectionReason: endpoint.ejected ? view?.outlier?.lastEjectionReason : undefined,
      ejections: view?.outlier?.totalEjections ?? 0,
      inConnectBackoff: view?.inConnectBackoff ?? false,
      weight: endpoint.weight,
      configuredWeight: endpoint.configuredWeight,
      activeRpcs: endpoint.activeRequests,
      totalRpcs: endpoint.totalRequests,
      latencyEwmaMs: endpoint.latencyEwmaMs === undefined ? undefined : round(endpoint.latencyEwmaMs),
      connections: endpoint.pool.connectionCount,
    };
  });
  return {
    name: cluster.name,
    policy: cluster.config.lb_policy,
    discovery: cluster.config.dns ? 'dns' : cluster.config.kubernetes ? 'kubernetes' : cluster.config.eds ? 'xds' : 'static',
    activeRpcs: cluster.limits.activeRequests,
    endpoints,
  };
}

/** The routes in match order, as configured (defaults filled in), each with the name logs and metrics use. */
export function routesView(configs: readonly RouteConfig[], routes: readonly Route[]): unknown[] {
  return configs.map((config, index) => ({ ...config, name: routes[index]?.name ?? config.name }));
}

export interface CertificateView {
  readonly source: string;
  readonly file: string | undefined;
  readonly subject: string;
  readonly serial: string;
  readonly notAfter: string;
  readonly secondsUntilExpiry: number;
}

export function certificateView(certificate: LoadedCertificate): CertificateView {
  return {
    source: certificate.source,
    file: certificate.file,
    subject: certificate.subject,
    serial: certificate.serialNumber,
    notAfter: certificate.notAfter.toISOString(),
    secondsUntilExpiry: certificate.secondsUntilExpiry,
  };
}

/** Endpoint changes drawn as marks on the history charts. */
const MARK_KINDS = new Set<RecentChange['kind']>(['added', 'removed', 'ejected', 'returned', 'unhealthy', 'healthy']);

/** What the dashboard shows of WebSocket: the clusters WebSocket routes name, and open sessions per endpoint. */
export interface WebSocketBalance {
  readonly clusters: ReadonlySet<string>;
  /** Cluster name → endpoint address → open sessions. */
  readonly connections: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

/**
 * What the dashboard polls: each cluster's endpoints with their share of the window's attempts, and its
 * history; for a cluster WebSocket routes use (or with sessions open), its open sessions per endpoint.
 */
export function balanceView(clusters: Iterable<Cluster>, window: BalanceWindow, changes: readonly RecentChange[], websocket?: WebSocketBalance) {
  const time = Date.now();
  return {
    time,
    windowSeconds: window.windowSeconds,
    clusters: [...clusters].map((cluster) => {
      const balance = window.snapshot(cluster.name);
      const view = clusterView(cluster);
      const attempts = Object.values(balance.attempts).reduce((sum, count) => sum + count, 0);
      const sessions = websocket?.connections.get(cluster.name);
      const isWebSocket = websocket !== undefined && (websocket.clusters.has(cluster.name) || sessions !== undefined);
      const connections = [...(sessions?.values() ?? [])].reduce((sum, count) => sum + count, 0);
      return {
        name: view.name,
        policy: view.policy,
        rps: round(balance.rps),
        p50Ms: balance.p50Ms === undefined ? undefined : round(balance.p50Ms),
        p99Ms: balance.p99Ms === undefined ? undefined : round(balance.p99Ms),
        statusCodes: balance.statusCodes,
        ...(isWebSocket && { websocket: { connections } }),
        endpoints: view.endpoints.map((endpoint) => {
          const recent = balance.attempts[endpoint.address] ?? 0;
          const open = sessions?.get(endpoint.address) ?? 0;
          return {
            ...endpoint,
            recentRpcs: recent,
            share: attempts === 0 ? 0 : round(recent / attempts),
            ...(isWebSocket && { websocketConnections: open, websocketShare: connections === 0 ? 0 : round(open / connections) }),
          };
        }),
        history: historyView(cluster.name, view.endpoints.map((endpoint) => endpoint.address), window, changes),
      };
    }),
    changes: changes.slice(0, 20),
  };
}

/**
 * A cluster's history for the charts: points oldest first, attempts as one array per point in the
 * order of `endpoints` (current endpoints first, then ones that have left but still appear), and the
 * endpoint changes inside the history as marks.
 */
function historyView(cluster: string, current: readonly string[], window: BalanceWindow, changes: readonly RecentChange[]) {
  const points = window.history(cluster);
  const endpoints = [...current];
  for (const point of points) {
    for (const key of Object.keys(point.attempts)) if (!endpoints.includes(key)) endpoints.push(key);
  }
  const from = points[0]?.time ?? Date.now();
  return {
    stepSeconds: window.historyStepSeconds,
    endpoints,
    points: points.map((point) => ({
      time: point.time,
      rps: round(point.rps),
      errorsPerSecond: round(point.errorsPerSecond),
      p99Ms: point.p99Ms === undefined ? undefined : round(point.p99Ms),
      attempts: endpoints.map((key) => point.attempts[key] ?? 0),
    })),
    marks: changes
      .filter((change) => change.cluster === cluster && change.time >= from && MARK_KINDS.has(change.kind))
      .map((change) => ({ time: change.time, kind: change.kind, endpoint: change.endpoint }))
      .reverse(),
  };
}

/** Keys whose values might be credentials; their values are replaced, whatever they hold. */
const SECRET_KEY = /(^|_)(key|secret|password|token|credentials?)(_|$)|key_file$/i;
export const REDACTED = '[redacted]';
/** Header matches on these compare against credentials: the values they match are redacted too. */
const SENSITIVE_HEADER = /authorization|cookie|token|api-key|apikey|secret/i;
const HEADER_VALUE_FIELDS = new Set(['exact', 'prefix', 'regex']);

/**
 * A config (or part of one) with anything that could be a credential replaced. Today the
 * config names files rather than holding keys, but a private key's path is
 * no one's business either, and new fields get the same treatment by name.
 */
export function redactSecrets(value: unknown): unknown {
  return redact(value);
}

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== 'object') return value;
  const sensitiveHeader = 'name' in value && typeof value.name === 'string' && SENSITIVE_HEADER.test(value.name);
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => {
    const secret = SECRET_KEY.test(key) || (sensitiveHeader && HEADER_VALUE_FIELDS.has(key));
    return [key, secret && inner !== undefined ? REDACTED : redact(inner)];
  }));
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
