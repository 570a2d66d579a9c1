/**
 * A token bucket: `burst` tokens, refilled continuously at `ratePerSecond`.
 * Pure: the clock is injected (milliseconds, monotonic), no timers, so tests
 * are exact and a bucket that is never touched costs nothing.
 */
/** One clock for every bucket (a bound performance.now per bucket would be a closure per connection). */
const monotonicNow = (): number => performance.now();

export class TokenBucket {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly #now: () => number;
  #tokens: number;
  #updatedAt: number;

  constructor(ratePerSecond: number, burst: number, now: () => number = monotonicNow) {
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#updatedAt = now();
  }

  /** Takes one token if there is one. Synchronous; never waits. */
  tryTake(): boolean {
    const now = this.#now();
    const elapsed = now - this.#updatedAt;
    if (elapsed > 0) {
      this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.ratePerSecond) / 1000);
      this.#updatedAt = now;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Tokens available now (fractional), for tests and metrics. */
  get available(): number {
    const elapsed = Math.max(0, this.#now() - this.#updatedAt);
    return Math.min(this.burst, this.#tokens + (elapsed * this.ratePerSecond) / 1000);
  }
}
