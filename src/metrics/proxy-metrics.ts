/**
 * Prometheus metrics of one proxy, in a registry of its own (several proxies
 * may share a process in tests). Names follow grpc-prometheus for what the
 * proxy serves (grpc_server_*), so existing dashboards and queries work;
 * what only a proxy knows (endpoints, pools, limits) is switchyard_*.
 *
 * Counters and histograms that change per RPC are cells (cells.ts), looked
 * up once per series, so an RPC costs a few map lookups and additions and
 * builds no label string. State
 * (connections, health, limits, certificates) is read from the proxy at
 * scrape time: it costs nothing between scrapes and is never stale.
 * docs/observability.md lists every metric.
 */
import { getHeapStatistics } from 'node:v8';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Cluster, ClusterEndpoint } from '../cluster/cluster.ts';
import type { Outcome } from '../grpc/outcome.ts';
import { FAILURE_CODES, type FailureCode } from '../grpc/failures.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';
import { MethodLabeler, type MethodLabels } from '../grpc/method-labels.ts';
import type { RpcProtocol } from '../grpc/streams.ts';
import { statusName } from '../grpc/status.ts';
import type { LoadedCertificate } from '../security/certificate-expiry.ts';
import { registerXdsMetrics, type XdsMetricsSource } from './xds-metrics.ts';
import { CellCounter, CellHistogram, type CounterCell, type HistogramCell } from './cells.ts';
import type { WebSocketMetricsSource } from './websocket-metrics.ts';

/** What the scrape-time gauges read from the running proxy. */
export interface MetricsSource {
  clusters(): Iterable<Cluster>;
  listeners(): Iterable<{ readonly name: string; readonly connectionCount: number }>;
  certificates(): readonly LoadedCertificate[];
  ready(): boolean;
  /** True while new RPCs are refused for memory (src/resilience/overload.ts). */
  overloaded(): boolean;
  /** Present when the proxy takes its config from an xDS control plane. */
  xds?: XdsMetricsSource;
  /** The WebSocket session registry (src/websocket/): its metrics are registered when present. */
  websocket?: WebSocketMetricsSource;
}

export interface ProxyMetricsOptions {
  readonly source: MetricsSource;
  /** Paths that always get their own method labels. */
  readonly namedMethods: Iterable<string>;
  readonly maxLearnedMethods: number;
  readonly version: string;
}

/** RPC latencies from 1 ms to 5 min: proxies carry both quick unary calls and long streams. */
const RPC_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const NO_ROUTE = 'none';

interface RpcSeries {
  /** By outcomeKeyOf(status, reason) and the protocol (PROTOCOL_INDEX). */
  readonly handled: Map<number, CounterCell>;
  readonly handling: HistogramCell;
  readonly messagesIn: CounterCell;
  readonly messagesOut: CounterCell;
  readonly bytesIn: CounterCell;
  readonly bytesOut: CounterCell;
  readonly labels: Record<string, string>;
}

interface EndpointSeries {
  /** By outcomeKeyOf(status, reason). */
  readonly attempts: Map<number, CounterCell>;
  readonly duration: HistogramCell;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly methods: MethodLabeler;
  readonly #started: CellCounter;
  readonly #handled: CellCounter;
  readonly #handling: CellHistogram;
  readonly #messagesIn: CellCounter;
  readonly #messagesOut: CellCounter;
  readonly #bytesIn: CellCounter;
  readonly #bytesOut: CellCounter;
  readonly #attempts: CellCounter;
  readonly #attemptDuration: CellHistogram;
  readonly #retries: Counter;
  readonly #reloads: Counter;
  readonly #abusiveConnections: Counter;
  // Keyed by objects and names the RPC already holds (the labeler's shared labels, route and cluster
  // names, endpoint keys), so finding a series builds no string.
  readonly #rpcSeries = new Map<MethodLabels, Map<string, RpcSeries>>();
  readonly #startedSeries: Record<RpcProtocol, Map<MethodLabels, CounterCell>> = { grpc: new Map(), 'grpc-web': new Map(), connect: new Map() };
  /** By cluster, then endpoint key. */
  readonly #endpointSeries = new Map<string, Map<string, EndpointSeries>>();

  constructor(options: ProxyMetricsOptions) {
    const registers = [this.registry];
    this.methods = new MethodLabeler(options.namedMethods, options.maxLearnedMethods);
    const rpcLabels = ['route', 'grpc_service', 'grpc_method'] as const;
    this.#started = new CellCounter({ name: 'grpc_server_started_total', help: 'RPCs started by clients of the proxy, by the protocol they spoke (grpc, grpc-web, connect).', labelNames: ['grpc_service', 'grpc_method', 'protocol'], registers });
    this.#handled = new CellCounter({ name: 'grpc_server_handled_total', help: 'RPCs finished, by the gRPC status the client received, the protocol it spoke and, when the proxy chose it, the failure catalogue reason.', labelNames: [...rpcLabels, 'protocol', 'grpc_code', 'reason'], registers });
    this.#handling = new CellHistogram({ name: 'grpc_server_handling_seconds', help: 'RPC duration as the proxy saw it: request headers to the end of the downstream stream.', labelNames: rpcLabels, buckets: RPC_SECONDS_BUCKETS, registers });
    this.#messagesIn = new CellCounter({ name: 'grpc_server_msg_received_total', help: 'gRPC messages received from clients.', labelNames: rpcLabels, registers });
    this.#messagesOut = new CellCounter({ name: 'grpc_server_msg_sent_total', help: 'gRPC messages sent to clients.', labelNames: rpcLabels, registers });
    this.#bytesIn = new CellCounter({ name: 'switchyard_rpc_received_bytes_total', help: 'Request body bytes (gRPC framing included) received from clients.', labelNames: rpcLabels, registers });
    this.#bytesOut = new CellCounter({ name: 'switchyard_rpc_sent_bytes_total', help: 'Response body bytes (gRPC framing included) sent to clients.', labelNames: rpcLabels, registers });
    this.#attempts = new CellCounter({ name: 'switchyard_upstream_rpcs_total', help: 'RPC attempts on each endpoint (retries count again), by the status and, when the proxy ended it, the failure catalogue reason.', labelNames: ['cluster', 'endpoint', 'grpc_code', 'reason'], registers });
    this.#attemptDuration = new CellHistogram({ name: 'switchyard_upstream_rpc_duration_seconds', help: 'Duration of each attempt on an endpoint.', labelNames: ['cluster', 'endpoint'], buckets: RPC_SECONDS_BUCKETS, registers });
    this.#retries = new Counter({ name: 'switchyard_retries_total', help: 'Attempts after the first, by cluster.', labelNames: ['cluster'], registers });
    this.#reloads = new Counter({ name: 'switchyard_reloads_total', help: 'Config and certificate reloads, by outcome.', labelNames: ['kind', 'result'], registers });
    this.#abusiveConnections = new Counter({ name: 'switchyard_connections_closed_abusive_total', help: 'Client connections closed for abuse, by the limit they went past.', labelNames: ['listener', 'limit'], registers });
    registerStateGauges(options.source, registers);
    if (options.source.xds) registerXdsMetrics(options.source.xds, registers);
    new Gauge({ name: 'switchyard_info', help: 'Always 1; the labels say what runs.', labelNames: ['version', 'node'], registers }).set({ version: options.version, node: process.versions.node }, 1);
    collectDefaultMetrics({ register: this.registry });
    // Allocation rate is what drives GC pauses: one number per scrape, read from V8 (prom-client's defaults lack it).
    new Counter({
      name: 'switchyard_heap_allocated_bytes_total',
      help: 'Bytes the JavaScript heap has allocated since the process started (V8 total_allocated_bytes).',
      registers,
      collect() {
        this.reset();
        this.inc(getHeapStatistics().total_allocated_bytes);
      },
    });
  }

  /** Counts an RPC as started and fixes the method labels it will be counted under. */
  rpcStarted(record: RpcRecord): void {
    const labels = this.methods.labelsFor(record.path);
    record.metricLabels = labels;
    const ofProtocol = this.#startedSeries[record.protocol];
    let child = ofProtocol.get(labels);
    if (!child) {
      child = this.#started.cell({ grpc_service: labels.service, grpc_method: labels.method, protocol: record.protocol });
      ofProtocol.set(labels, child);
    }
    child.value++;
  }

  rpcEnded(record: RpcRecord): void {
    const labels = record.metricLabels;
    if (!labels) return;
    const route = record.route ?? NO_ROUTE;
    const series = this.#seriesFor(route, labels);
    // grpc_server_handled_total is the one series of a route and method that is also by protocol; the others are shared.
    const outcomeKey = outcomeKeyOf(record.status, record.reason) * PROTOCOLS + PROTOCOL_INDEX[record.protocol];
    let handled = series.handled.get(outcomeKey);
    if (!handled) {
      handled = this.#handled.cell({ ...series.labels, protocol: record.protocol, grpc_code: statusName(record.status), reason: record.reason ?? '' });
      series.handled.set(outcomeKey, handled);
    }
    handled.value++;
    series.handling.observe((performance.now() - record.startedAt) / 1000);
    series.messagesIn.value += record.messagesIn;
    series.messagesOut.value += record.messagesOut;
    series.bytesIn.value += record.bytesIn;
    series.bytesOut.value += record.bytesOut;
    if (record.retries > 0 && record.cluster !== undefined) this.#retries.inc({ cluster: record.cluster }, record.retries);
    this.methods.observe(record.path, record.endpoint !== undefined, record.status);
  }

  /** A client connection on `listener` was closed for going past `limit`. */
  connectionClosedAsAbusive(listener: string, limit: string): void {
    this.#abusiveConnections.inc({ listener, limit });
  }

  /** One attempt on `endpoint` of `cluster` ended. */
  attemptEnded(cluster: string, endpoint: ClusterEndpoint, latencyMs: number, outcome: Outcome): void {
    let ofCluster = this.#endpointSeries.get(cluster);
    if (!ofCluster) this.#endpointSeries.set(cluster, ofCluster = new Map());
    let series = ofCluster.get(endpoint.key);
    if (!series) {
      series = { attempts: new Map(), duration: this.#attemptDuration.cell({ cluster, endpoint: endpoint.key }) };
      ofCluster.set(endpoint.key, series);
    }
    const outcomeKey = outcomeKeyOf(outcome.status, outcome.failure);
    let counter = series.attempts.get(outcomeKey);
    if (!counter) {
      counter = this.#attempts.cell({ cluster, endpoint: endpoint.key, grpc_code: statusName(outcome.status), reason: outcome.failure ?? '' });
      series.attempts.set(outcomeKey, counter);
    }
    counter.value++;
    series.duration.observe(latencyMs / 1000);
  }

  /**
   * Drops an endpoint's series once it has left its cluster: in Kubernetes
   * every rollout brings new pod addresses, and series of pods long gone
   * would otherwise pile up for as long as the proxy runs.
   */
  endpointRemoved(cluster: string, endpoint: string): void {
    if (!this.#endpointSeries.get(cluster)?.delete(endpoint)) return;
    this.#attempts.remove({ cluster, endpoint });
    this.#attemptDuration.remove({ cluster, endpoint });
  }

  reloaded(kind: 'config' | 'certificates' | 'xds', ok: boolean): void {
    this.#reloads.inc({ kind, result: ok ? 'ok' : 'failed' });
  }

  /** The Prometheus text exposition. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  #seriesFor(route: string, method: MethodLabels): RpcSeries {
    let ofMethod = this.#rpcSeries.get(method);
    if (!ofMethod) this.#rpcSeries.set(method, ofMethod = new Map());
    let series = ofMethod.get(route);
    if (!series) {
      const labels = { route, grpc_service: method.service, grpc_method: method.method };
      series = {
        labels,
        handled: new Map(),
        handling: this.#handling.cell(labels),
        messagesIn: this.#messagesIn.cell(labels),
        messagesOut: this.#messagesOut.cell(labels),
        bytesIn: this.#bytesIn.cell(labels),
        bytesOut: this.#bytesOut.cell(labels),
      };
      ofMethod.set(route, series);
    }
    return series;
  }
}

/** Gauges (and counters kept by other parts) read from the proxy when scraped. */
function registerStateGauges(source: MetricsSource, registers: Registry[]): void {
  const endpointLabels = ['cluster', 'endpoint'] as const;
  const perEndpoint = (name: string, help: string, value: (endpoint: ClusterEndpoint, cluster: Cluster) => number) =>
    new Gauge({
      name, help, labelNames: endpointLabels, registers,
      collect() {
        this.reset();
        for (const cluster of source.clusters()) {
          for (const endpoint of cluster.endpoints.values()) this.set({ cluster: cluster.name, endpoint: endpoint.key }, value(endpoint, cluster));
        }
      },
    });
  perEndpoint('switchyard_upstream_active_rpcs', 'RPC attempts in flight on each endpoint.', (endpoint) => endpoint.activeRequests);
  perEndpoint('switchyard_upstream_connections', 'Open HTTP/2 connections to each endpoint.', (endpoint) => endpoint.pool.connectionCount);
  perEndpoint('switchyard_upstream_endpoint_weight', 'The weight the balancer uses (slow start lowers it for a while).', (endpoint) => endpoint.weight);
  perEndpoint('switchyard_upstream_endpoint_ejected', '1 while outlier detection has ejected the endpoint.', (endpoint) => (endpoint.ejected ? 1 : 0));

  new Gauge({
    name: 'switchyard_upstream_endpoint_available', help: '1 when the endpoint may take new RPCs (connectable, healthy, not ejected, or all_unhealthy fail_open).', labelNames: endpointLabels, registers,
    collect() {
      this.reset();
      for (const cluster of source.clusters()) {
        for (const view of cluster.healthSnapshot()) this.set({ cluster: cluster.name, endpoint: view.key }, view.available ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'switchyard_upstream_endpoint_health', help: '1 for the endpoint\'s active health check state (unchecked when the cluster has no health_check).', labelNames: [...endpointLabels, 'state'], registers,
    collect() {
      this.reset();
      for (const cluster of source.clusters()) {
        for (const endpoint of cluster.endpoints.values()) this.set({ cluster: cluster.name, endpoint: endpoint.key, state: endpoint.health }, 1);
      }
    },
  });
  new Counter({
    name: 'switchyard_outlier_ejections_total', help: 'Outlier ejections of each endpoint since it joined the cluster.', labelNames: endpointLabels, registers,
    collect() {
      this.reset();
      for (const cluster of source.clusters()) {
        for (const view of cluster.healthSnapshot()) this.inc({ cluster: cluster.name, endpoint: view.key }, view.outlier?.totalEjections ?? 0);
      }
    },
  });

  const perCluster = (name: string, help: string, value: (cluster: Cluster) => number) =>
    new Gauge({
      name, help, labelNames: ['cluster'], registers,
      collect() {
        this.reset();
        for (const cluster of source.clusters()) this.set({ cluster: cluster.name }, value(cluster));
      },
    });
  perCluster('switchyard_cluster_active_rpcs', 'RPCs in flight to the cluster (what circuit_breakers.max_requests bounds).', (cluster) => cluster.limits.activeRequests);
  perCluster('switchyard_cluster_pending_rpcs', 'RPCs waiting for a connection or a stream slot (max_pending_requests).', (cluster) => cluster.limits.pendingRequests);
  perCluster('switchyard_cluster_connections', 'Upstream connections of the cluster (max_connections).', (cluster) => cluster.limits.connections);
  perCluster('switchyard_cluster_active_retries', 'Retries in flight (max_retries and the retry budget).', (cluster) => cluster.limits.activeRetries);
  new Gauge({
    name: 'switchyard_cluster_circuit_breaker_limit', help: 'The configured circuit breaker limits, to divide the usage gauges by (pool saturation).', labelNames: ['cluster', 'limit'], registers,
    collect() {
      this.reset();
      for (const cluster of source.clusters()) {
        for (const [limit, value] of Object.entries(cluster.config.circuit_breakers)) this.set({ cluster: cluster.name, limit }, value);
      }
    },
  });
  new Counter({
    name: 'switchyard_cluster_overflows_total', help: 'RPCs, retries and connections a circuit breaker or the retry budget turned away.', labelNames: ['cluster', 'limit'], registers,
    collect() {
      this.reset();
      for (const cluster of source.clusters()) {
        for (const [limit, value] of Object.entries(cluster.limits.overflows)) this.inc({ cluster: cluster.name, limit }, value);
      }
    },
  });
  new Gauge({
    name: 'switchyard_listener_connections', help: 'Open client connections on each listener.', labelNames: ['listener'], registers,
    collect() {
      this.reset();
      for (const listener of source.listeners()) this.set({ listener: listener.name }, listener.connectionCount);
    },
  });
  new Gauge({
    name: 'switchyard_certificate_expiry_seconds', help: 'Seconds until each loaded certificate expires (negative once expired).', labelNames: ['source', 'subject', 'serial'], registers,
    collect() {
      this.reset();
      for (const certificate of source.certificates()) {
        this.set({ source: certificate.source, subject: certificate.subject, serial: certificate.serialNumber }, certificate.secondsUntilExpiry);
      }
    },
  });
  new Gauge({
    name: 'switchyard_ready', help: '1 while /ready answers 200.', registers,
    collect() {
      this.set(source.ready() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'switchyard_overloaded', help: '1 while new RPCs are refused because the proxy is past overload.max_memory_mb.', registers,
    collect() {
      this.set(source.overloaded() ? 1 : 0);
    },
  });
}

const REASON_INDEX = new Map<FailureCode | undefined, number>(FAILURE_CODES.map((code, index) => [code, index + 1]));

const PROTOCOL_INDEX: Readonly<Record<RpcProtocol, number>> = { grpc: 0, 'grpc-web': 1, connect: 2 };
const PROTOCOLS = 3;

/** A number per (status, reason) pair, so that finding an RPC's series builds no string. */
function outcomeKeyOf(status: number | undefined, reason: FailureCode | undefined): number {
  return (status ?? 99) * 1_000 + (REASON_INDEX.get(reason) ?? 0);
}
