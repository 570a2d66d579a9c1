/**
 * The dashboard's history: per cluster, the last 15 minutes in steps of a few seconds (RPCs, failed
 * RPCs, a p99 and attempts per endpoint), so "when did this pod stop getting traffic?" has a picture
 * without Prometheus. Memory is fixed: a ring of steps, and latency samples only for the step being
 * filled; a finished step keeps its p99 as one number.
 */

/** 15 minutes: long enough to see an ejection, its return and the minutes before. */
export const HISTORY_SECONDS = 15 * 60;
/** 5 s steps: 180 points per chart; an ejection of a few seconds still shows as a dip. */
export const HISTORY_STEP_SECONDS = 5;
/** Latencies sampled per cluster per step; beyond it, samples replace each other at random. */
const SAMPLES_PER_STEP = 1_000;

interface StepCluster {
  rpcs: number;
  failed: number;
  latencies: number[];
  latencyCount: number;
  p99Ms: number | undefined;
  readonly attempts: Map<string, number>;
}

interface Step {
  index: number;
  readonly clusters: Map<string, StepCluster>;
}

export interface HistoryPoint {
  /** Start of the step, ms since the epoch. */
  readonly time: number;
  /** RPCs that ended per second in the step (the step being filled: over its elapsed part). */
  readonly rps: number;
  /** RPCs that ended with a status other than OK, per second. */
  readonly errorsPerSecond: number;
  readonly p99Ms: number | undefined;
  /** Endpoint key → attempts in the step. */
  readonly attempts: Record<string, number>;
}

export class BalanceHistory {
  readonly stepSeconds: number;
  readonly steps: number;
  readonly #ring: Step[];
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #startedAt: number;
  /** The step latency samples are kept for; older ones have been reduced to their p99. */
  #filling: Step | undefined;

  constructor(options: { now: () => number; random: () => number; seconds?: number; stepSeconds?: number }) {
    this.stepSeconds = options.stepSeconds ?? HISTORY_STEP_SECONDS;
    this.steps = Math.ceil((options.seconds ?? HISTORY_SECONDS) / this.stepSeconds);
    this.#now = options.now;
    this.#random = options.random;
    this.#startedAt = options.now();
    this.#ring = Array.from({ length: this.steps }, () => ({ index: -1, clusters: new Map() }));
  }

  rpcEnded(cluster: string, ok: boolean, latencyMs: number): void {
    const entry = this.#entry(cluster);
    entry.rpcs++;
    if (!ok) entry.failed++;
    entry.latencyCount++;
    if (entry.latencies.length < SAMPLES_PER_STEP) {
      entry.latencies.push(latencyMs);
    } else {
      const slot = Math.floor(this.#random() * entry.latencyCount);
      if (slot < SAMPLES_PER_STEP) entry.latencies[slot] = latencyMs;
    }
  }

  attemptEnded(cluster: string, endpoint: string): void {
    const attempts = this.#entry(cluster).attempts;
    attempts.set(endpoint, (attempts.get(endpoint) ?? 0) + 1);
  }

  /** Oldest first, one point per step since the proxy started (at most the whole history). */
  points(cluster: string): HistoryPoint[] {
    const nowMs = this.#now();
    const stepMs = this.stepSeconds * 1000;
    const current = Math.floor(nowMs / stepMs);
    const first = Math.max(current - this.steps + 1, Math.floor(this.#startedAt / stepMs));
    const points: HistoryPoint[] = [];
    for (let index = first; index <= current; index++) {
      const step = this.#ring[index % this.steps]!;
      const entry = step.index === index ? step.clusters.get(cluster) : undefined;
      // The step being filled covers only its elapsed part; the first one only since the start.
      const from = Math.max(index * stepMs, this.#startedAt);
      const seconds = Math.max(1, (Math.min(nowMs, (index + 1) * stepMs) - from) / 1000);
      points.push({
        time: index * stepMs,
        rps: (entry?.rpcs ?? 0) / seconds,
        errorsPerSecond: (entry?.failed ?? 0) / seconds,
        p99Ms: entry ? (step === this.#filling ? p99(entry.latencies) : entry.p99Ms) : undefined,
        attempts: entry ? Object.fromEntries(entry.attempts) : {},
      });
    }
    return points;
  }

  #entry(cluster: string): StepCluster {
    const index = Math.floor(this.#now() / (this.stepSeconds * 1000));
    const step = this.#ring[index % this.steps]!;
    if (step.index !== index) {
      step.index = index;
      step.clusters.clear();
    }
    if (this.#filling !== step) {
      if (this.#filling) reduce(this.#filling);
      this.#filling = step;
    }
    let entry = step.clusters.get(cluster);
    if (!entry) {
      entry = { rpcs: 0, failed: 0, latencies: [], latencyCount: 0, p99Ms: undefined, attempts: new Map() };
      step.clusters.set(cluster, entry);
    }
    return entry;
  }
}

/** A finished step keeps its p99 and lets its samples go. */
function reduce(step: Step): void {
  for (const entry of step.clusters.values()) {
    entry.p99Ms = p99(entry.latencies);
    entry.latencies = [];
  }
}

function p99(samples: readonly number[]): number | undefined {
  if (samples.length === 0) return undefined;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)];
}
