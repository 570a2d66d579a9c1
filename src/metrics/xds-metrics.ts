/**
 * The xDS client's metrics, read when /metrics is scraped: whether the proxy
 * is connected to its control plane, when it last took a config from it, and
 * how many updates it accepted (ACK) and refused (NACK) per resource type.
 * While the control plane is down the proxy serves its last good config:
 * `switchyard_xds_connected` 0 with an ageing last-update timestamp says so.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface XdsMetricsView {
  readonly connected: boolean;
  /** ms since the epoch; undefined before the first config. */
  readonly lastUpdateAt: number | undefined;
  readonly updates: readonly { readonly type: string; readonly result: 'ack' | 'nack'; readonly count: number }[];
}

export type XdsMetricsSource = () => XdsMetricsView;

export function registerXdsMetrics(source: XdsMetricsSource, registers: Registry[]): void {
  new Gauge({
    name: 'switchyard_xds_connected', help: '1 while the ADS stream to the xDS control plane is up; 0 while the proxy serves its last good config without one.', registers,
    collect() {
      this.set(source().connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'switchyard_xds_last_update_timestamp_seconds', help: 'When the proxy last accepted an xDS update (or, started from the cache, when the cached snapshot was written); 0 before any.', registers,
    collect() {
      this.set((source().lastUpdateAt ?? 0) / 1000);
    },
  });
  new Counter({
    name: 'switchyard_xds_updates_total', help: 'xDS responses accepted (ack) and refused (nack), by resource type.', labelNames: ['type', 'result'], registers,
    collect() {
      this.reset();
      for (const update of source().updates) this.inc({ type: update.type, result: update.result }, update.count);
    },
  });
}
