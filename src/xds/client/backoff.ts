/**
 * Jittered exponential backoff for reconnecting to a control plane: the
 * delay grows by `multiplier` from `initialMs` up to `maxMs`, and each delay
 * is spread by ±`jitter` so that many clients that lost the same control
 * plane do not all come back in the same instant.
 */

export interface BackoffOptions {
  /** First delay, ms. */
  readonly initialMs: number;
  /** Largest delay, ms (before jitter). */
  readonly maxMs: number;
  readonly multiplier: number;
  /** 0.2: each delay is picked uniformly within ±20% of the nominal one. */
  readonly jitter: number;
}

/**
 * gRPC's connection backoff, with a lower ceiling (a proxy should not wait minutes for its control
 * plane) and a wider spread: ±50 %, so that the proxies of a replica that restarts come back over a
 * second, not all within 0.4 s of each other.
 */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 30_000, multiplier: 1.6, jitter: 0.5 };

export class Backoff {
  readonly #options: BackoffOptions;
  readonly #random: () => number;
  #nominal: number;

  constructor(options: Partial<BackoffOptions> = {}, random: () => number = Math.random) {
    this.#options = { ...DEFAULT_BACKOFF, ...options };
    this.#random = random;
    this.#nominal = this.#options.initialMs;
  }

  /** The delay before the next attempt; each call grows the one after. */
  next(): number {
    const nominal = this.#nominal;
    this.#nominal = Math.min(this.#options.maxMs, nominal * this.#options.multiplier);
    const spread = nominal * this.#options.jitter;
    return Math.max(0, Math.round(nominal - spread + this.#random() * 2 * spread));
  }

  /** Back to initialMs: after a connection that worked. */
  reset(): void {
    this.#nominal = this.#options.initialMs;
  }
}
