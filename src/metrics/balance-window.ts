/**
 * What the dashboard shows: per cluster, over the last few seconds, how RPCs
 * spread over endpoints, their rate, latency quantiles and status mix.
 * Prometheus histograms answer this over minutes; the dashboard needs it now,
 * from the proxy alone. Counts live in one-second buckets; latency quantiles
 * come from a bounded sample per bucket, so memory stays fixed under any load.
 * It also keeps the last 15 minutes in coarser steps for the dashboard's charts (balance-history.ts).
 */
import { statusName } from '../grpc/status.ts';
import { BalanceHistory, type HistoryPoint } from './balance-history.ts';

/** Latencies kept per cluster per second; beyond it, samples replace each other at random. */
const SAMPLES_PER_SECOND = 1_000;

interface ClusterSecond {
  rpcs: number;
  readonly statuses: Map<string, number>;
  readonly latencies: number[];
  latencyCount: number;
  readonly attempts: Map<string, number>;
}

interface Bucket {
  second: number;
  readonly clusters: Map<string, ClusterSecond>;
}

export interface ClusterBalance {
  /** RPCs per second that ended over the window. */
  readonly rps: number;
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  /** Status name → RPCs over the window. */
  readonly statusCodes: Record<string, number>;
  /** Endpoint key → attempts over the window. */
  readonly attempts: Record<string, number>;
}

export class BalanceWindow {
  readonly windowSeconds: number;
  readonly #buckets: Bucket[];
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #startedAt: number;
  readonly #history: BalanceHistory;

  constructor(options: { windowSeconds?: number; now?: () => number; random?: () => number; historySeconds?: number; historyStepSeconds?: number } = {}) {
    this.windowSeconds = options.windowSeconds ?? 10;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#startedAt = this.#now();
    this.#buckets = Array.from({ length: this.windowSeconds }, () => ({ second: -1, clusters: new Map() }));
    this.#history = new BalanceHistory({ now: this.#now, random: this.#random, seconds: options.historySeconds, stepSeconds: options.historyStepSeconds });
  }

  /** Seconds per history point. */
  get historyStepSeconds(): number {
    return this.#history.stepSeconds;
  }

  /** The cluster's history, oldest first: one point per step since the proxy started, at most 15 minutes. */
  history(cluster: string): HistoryPoint[] {
    return this.#history.points(cluster);
  }

  rpcEnded(cluster: string, status: number | undefined, latencyMs: number): void {
    const entry = this.#current(cluster);
    entry.rpcs++;
    const name = statusName(status);
    entry.statuses.set(name, (entry.statuses.get(name) ?? 0) + 1);
    entry.latencyCount++;
    if (entry.latencies.length < SAMPLES_PER_SECOND) {
      entry.latencies.push(latencyMs);
    } else {
      const slot = Math.floor(this.#random() * entry.latencyCount);
      if (slot < SAMPLES_PER_SECOND) entry.latencies[slot] = latencyMs;
    }
    this.#history.rpcEnded(cluster, name === 'OK', latencyMs);
  }

  attemptEnded(cluster: string, endpoint: string): void {
    const entry = this.#current(cluster);
    entry.attempts.set(endpoint, (entry.attempts.get(endpoint) ?? 0) + 1);
    this.#history.attemptEnded(cluster, endpoint);
  }

  snapshot(cluster: string): ClusterBalance {
    const nowMs = this.#now();
    const second = Math.floor(nowMs / 1000);
    let rpcs = 0;
    const statuses: Record<string, number> = {};
    const attempts: Record<string, number> = {};
    const latencies: number[] = [];
    for (const bucket of this.#buckets) {
      if (bucket.second <= second - this.windowSeconds) continue;
      const entry = bucket.clusters.get(cluster);
      if (!entry) continue;
      rpcs += entry.rpcs;
      for (const [name, count] of entry.statuses) statuses[name] = (statuses[name] ?? 0) + count;
      for (const [key, count] of entry.attempts) attempts[key] = (attempts[key] ?? 0) + count;
      latencies.push(...entry.latencies);
    }
    latencies.sort((a, b) => a - b);
    // Until the window has filled, divide by the time actually covered.
    const coveredSeconds = Math.max(1, Math.min(this.windowSeconds, (nowMs - this.#startedAt) / 1000));
    return {
      rps: rpcs / coveredSeconds,
      p50Ms: quantile(latencies, 0.5),
      p99Ms: quantile(latencies, 0.99),
      statusCodes: statuses,
      attempts,
    };
  }

  #current(cluster: string): ClusterSecond {
    const second = Math.floor(this.#now() / 1000);
    const bucket = this.#buckets[second % this.windowSeconds]!;
    if (bucket.second !== second) {
      bucket.second = second;
      bucket.clusters.clear();
    }
    let entry = bucket.clusters.get(cluster);
    if (!entry) {
      entry = { rpcs: 0, statuses: new Map(), latencies: [], latencyCount: 0, attempts: new Map() };
      bucket.clusters.set(cluster, entry);
    }
    return entry;
  }
}

/** Nearest-rank quantile of sorted values. */
function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}
