/**
 * Slow start: an endpoint that starts taking traffic after the cluster is up
 * (a new pod, or one back from failing its health checks) gets its weight
 * ramped linearly from 10% to 100% over `slow_start_window`, so a cold JVM or
 * an empty cache is not handed a full share at once. A pure object; the clock
 * is injected and the cluster re-reads the factors on a timer while any ramp runs.
 */

/** Where the ramp starts, as Envoy's default min_weight_percent: low enough to spare a cold endpoint, enough to warm it. */
export const SLOW_START_MIN_FACTOR = 0.1;

export class SlowStart {
  readonly #windowMs: number | undefined;
  readonly #now: () => number;
  /** When each ramping endpoint's ramp began. */
  readonly #started = new Map<string, number>();

  constructor(windowMs: number | undefined, now: () => number) {
    this.#windowMs = windowMs;
    this.#now = now;
  }

  get enabled(): boolean {
    return this.#windowMs !== undefined;
  }

  /** How often the weights are worth recomputing during a ramp: ten steps per window. */
  get stepMs(): number {
    return Math.max(1, (this.#windowMs ?? 0) / 10);
  }

  /** Starts (or restarts) `key`'s ramp now. Ignored when slow start is off. */
  begin(key: string): void {
    if (this.#windowMs !== undefined) this.#started.set(key, this.#now());
  }

  forget(key: string): void {
    this.#started.delete(key);
  }

  /** The share of its weight `key` gets now, SLOW_START_MIN_FACTOR..1. Finished ramps are forgotten. */
  factor(key: string): number {
    const started = this.#started.get(key);
    if (started === undefined || this.#windowMs === undefined) return 1;
    const progress = (this.#now() - started) / this.#windowMs;
    if (progress >= 1) {
      this.#started.delete(key);
      return 1;
    }
    return SLOW_START_MIN_FACTOR + (1 - SLOW_START_MIN_FACTOR) * Math.max(0, progress);
  }

  /** True while some endpoint's ramp has not reached full weight (as of the last factor() calls). */
  get ramping(): boolean {
    return this.#started.size > 0;
  }
}
