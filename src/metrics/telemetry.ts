/**
 * Everything the proxy observes about its own traffic, for the admin
 * interface: Prometheus metrics, the live balance window the dashboard
 * draws, and a short list of recent changes (reloads, endpoints joining,
 * leaving, failing checks, ejected). The proxy feeds it; it never calls back.
 */
import type { ClusterEndpoint, EndpointEvent } from '../cluster/cluster.ts';
import type { Outcome } from '../grpc/outcome.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';
import { BalanceWindow } from './balance-window.ts';
import { ProxyMetrics, type ProxyMetricsOptions } from './proxy-metrics.ts';
import { WebSocketMetrics, type WebSocketMetricsSource } from './websocket-metrics.ts';
import type { WebSocketRecord } from '../websocket/session-record.ts';

/** Recent changes kept for the dashboard; older ones are in the logs. */
const MAX_CHANGES = 100;

export interface RecentChange {
  /** ms since the epoch. */
  readonly time: number;
  readonly kind: 'reload' | 'reload_failed' | EndpointEvent['kind'];
  readonly cluster?: string | undefined;
  readonly endpoint?: string | undefined;
  readonly message: string;
}

const EVENT_WORDS: Record<EndpointEvent['kind'], string> = {
  added: 'joined',
  removed: 'left',
  healthy: 'passes health checks',
  unhealthy: 'fails health checks',
  ejected: 'ejected by outlier detection',
  returned: 'back from ejection',
};

export class Telemetry {
  readonly metrics: ProxyMetrics;
  readonly balance: BalanceWindow;
  /** WebSocket metrics, with the session registry they read; undefined when the proxy has none. */
  readonly websocket: { readonly metrics: WebSocketMetrics; readonly source: WebSocketMetricsSource } | undefined;
  readonly #changes: RecentChange[] = [];

  constructor(options: ProxyMetricsOptions & { readonly windowSeconds?: number }) {
    this.metrics = new ProxyMetrics(options);
    this.balance = new BalanceWindow({ windowSeconds: options.windowSeconds });
    const sessions = options.source.websocket;
    this.websocket = sessions && { metrics: new WebSocketMetrics(this.metrics.registry, sessions), source: sessions };
  }

  /** A WebSocket upgrade was answered (refused or upgraded). */
  websocketUpgradeAnswered(record: WebSocketRecord): void {
    this.websocket?.metrics.upgradeAnswered(record);
  }

  /** An upgraded WebSocket session ended. */
  websocketSessionEnded(record: WebSocketRecord): void {
    this.websocket?.metrics.sessionEnded(record);
  }

  rpcStarted(record: RpcRecord): void {
    this.metrics.rpcStarted(record);
  }

  rpcEnded(record: RpcRecord): void {
    this.metrics.rpcEnded(record);
    if (record.cluster !== undefined) this.balance.rpcEnded(record.cluster, record.status, performance.now() - record.startedAt);
  }

  attemptEnded(cluster: string, endpoint: ClusterEndpoint, latencyMs: number, outcome: Outcome): void {
    this.metrics.attemptEnded(cluster, endpoint, latencyMs, outcome);
    this.balance.attemptEnded(cluster, endpoint.key);
  }

  connectionClosedAsAbusive(listener: string, limit: string): void {
    this.metrics.connectionClosedAsAbusive(listener, limit);
  }

  endpointEvent(event: EndpointEvent): void {
    if (event.kind === 'removed') this.metrics.endpointRemoved(event.cluster, event.endpoint);
    const detail = event.detail ? ` (${event.detail})` : '';
    this.#remember({ time: Date.now(), kind: event.kind, cluster: event.cluster, endpoint: event.endpoint, message: `${event.endpoint} ${EVENT_WORDS[event.kind]}${detail}` });
  }

  reloaded(kind: 'config' | 'certificates' | 'xds', error?: string): void {
    this.metrics.reloaded(kind, error === undefined);
    const what = kind === 'xds' ? 'xDS config' : kind;
    this.#remember(error === undefined
      ? { time: Date.now(), kind: 'reload', message: `${what} reloaded` }
      : { time: Date.now(), kind: 'reload_failed', message: `${what} reload rejected: ${error}` });
  }

  /** Newest first. */
  get recentChanges(): readonly RecentChange[] {
    return this.#changes;
  }

  #remember(change: RecentChange): void {
    this.#changes.unshift(change);
    if (this.#changes.length > MAX_CHANGES) this.#changes.pop();
  }
}
