/**
 * WebSocket metrics (docs/websocket.md): open sessions per endpoint, read
 * from the session registry at scrape time (the gauge KEDA scales a
 * WebSocket backend on), and counters fed as upgrades are answered and
 * sessions end: upgrades by result, bytes, close codes, proxy closes by
 * reason, session durations. Labels are bounded: routes come from the
 * config, results and reasons from fixed lists, close codes are grouped.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { WebSocketRecord } from '../websocket/session-record.ts';

/** What the scrape-time figures read from the session registry. */
export interface WebSocketMetricsSource {
  /** Open sessions, cluster name → endpoint address → count. */
  perEndpoint(): ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** The open sessions' bytes so far, so that bytes_total moves while sessions last for hours. */
  openSessions(): Iterable<{ readonly route: string; readonly bytesFromClient: number; readonly bytesFromBackend: number }>;
}

/** Sessions last from seconds to days: 1 s to 1 day. */
const SESSION_SECONDS_BUCKETS = [1, 10, 60, 300, 900, 1800, 3600, 7200, 14_400, 43_200, 86_400];
const NO_ROUTE = 'none';

export class WebSocketMetrics {
  readonly #upgrades: Counter;
  /** Bytes of ended sessions, by route and direction; open ones are added at scrape time. */
  readonly #endedBytes = new Map<string, { route: string; fromClient: number; fromBackend: number }>();
  readonly #closes: Counter;
  readonly #proxyCloses: Counter;
  readonly #duration: Histogram;

  constructor(registry: Registry, source: WebSocketMetricsSource) {
    const registers = [registry];
    const endedBytes = this.#endedBytes;
    new Gauge({
      name: 'switchyard_websocket_connections', help: 'Open WebSocket sessions per endpoint (what KEDA scales a WebSocket backend on).', labelNames: ['cluster', 'endpoint'], registers,
      collect() {
        this.reset();
        for (const [cluster, endpoints] of source.perEndpoint()) {
          for (const [endpoint, count] of endpoints) this.set({ cluster, endpoint }, count);
        }
      },
    });
    new Counter({
      name: 'switchyard_websocket_bytes_total', help: 'Bytes of WebSocket frames passed, from the client and from the backend (open sessions included).', labelNames: ['route', 'direction'], registers,
      collect() {
        this.reset();
        const add = (route: string, fromClient: number, fromBackend: number) => {
          if (fromClient > 0) this.inc({ route, direction: 'from_client' }, fromClient);
          if (fromBackend > 0) this.inc({ route, direction: 'from_backend' }, fromBackend);
        };
        for (const ended of endedBytes.values()) add(ended.route, ended.fromClient, ended.fromBackend);
        for (const open of source.openSessions()) add(open.route, open.bytesFromClient, open.bytesFromBackend);
      },
    });
    this.#upgrades = new Counter({ name: 'switchyard_websocket_upgrades_total', help: 'WebSocket upgrades, by the route and how they went (upgraded, or why not).', labelNames: ['listener', 'route', 'protocol', 'result'], registers });
    this.#closes = new Counter({ name: 'switchyard_websocket_closes_total', help: 'Ended WebSocket sessions, by who sent the first close frame and its code (none: no close frame).', labelNames: ['route', 'closed_by', 'code'], registers });
    this.#proxyCloses = new Counter({ name: 'switchyard_websocket_proxy_closes_total', help: 'WebSocket sessions the proxy closed itself, by reason (drain, idle_timeout, message_too_big, …).', labelNames: ['route', 'reason'], registers });
    this.#duration = new Histogram({ name: 'switchyard_websocket_session_duration_seconds', help: 'How long WebSocket sessions lasted, upgrade to close.', labelNames: ['route'], buckets: SESSION_SECONDS_BUCKETS, registers });
  }

  /** An upgrade was answered: refused, or upgraded. */
  upgradeAnswered(record: WebSocketRecord): void {
    this.#upgrades.inc({ listener: record.listener, route: record.route ?? NO_ROUTE, protocol: record.protocol, result: record.result });
  }

  /** A session that was upgraded has ended. */
  sessionEnded(record: WebSocketRecord): void {
    const route = record.route ?? NO_ROUTE;
    const bytes = this.#endedBytes.get(route) ?? { route, fromClient: 0, fromBackend: 0 };
    bytes.fromClient += record.bytesFromClient;
    bytes.fromBackend += record.bytesFromBackend;
    this.#endedBytes.set(route, bytes);
    this.#closes.inc({ route, closed_by: record.closedBy, code: codeLabel(record.closeCode) });
    if (record.proxyReason !== undefined) this.#proxyCloses.inc({ route, reason: record.proxyReason });
    this.#duration.observe({ route }, (performance.now() - record.startedAt) / 1000);
  }
}

/** RFC 6455's codes as they are; the ranges left to libraries (3000-3999) and applications (4000-4999) as one label each. */
function codeLabel(code: number | undefined): string {
  if (code === undefined) return 'none';
  if (code >= 1000 && code <= 1015) return String(code);
  if (code >= 3000 && code <= 3999) return '3xxx';
  if (code >= 4000 && code <= 4999) return '4xxx';
  return 'other';
}
