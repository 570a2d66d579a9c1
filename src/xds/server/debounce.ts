/**
 * Coalesces bursts of changes into one call: `fire` runs `delayMs` after the
 * last trigger, but never later than `maxDelayMs` after the first trigger of
 * the burst, so constant churn still fires about once every `maxDelayMs`.
 */
export interface DebounceTimers {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_TIMERS: DebounceTimers = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export class Debouncer {
  readonly #fire: () => void;
  readonly #delayMs: number;
  readonly #maxDelayMs: number;
  readonly #timers: DebounceTimers;
  #firstAt: number | undefined;
  #timer: unknown;
  #closed = false;

  constructor(fire: () => void, options: { delayMs: number; maxDelayMs: number }, timers: DebounceTimers = REAL_TIMERS) {
    this.#fire = fire;
    this.#delayMs = Math.max(0, options.delayMs);
    this.#maxDelayMs = Math.max(this.#delayMs, options.maxDelayMs);
    this.#timers = timers;
  }

  get pending(): boolean {
    return this.#firstAt !== undefined;
  }

  trigger(): void {
    if (this.#closed) return;
    const now = this.#timers.now();
    this.#firstAt ??= now;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    const wait = Math.max(0, Math.min(this.#delayMs, this.#firstAt + this.#maxDelayMs - now));
    this.#timer = this.#timers.setTimeout(() => this.#run(), wait);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#firstAt = undefined;
  }

  #run(): void {
    this.#timer = undefined;
    this.#firstAt = undefined;
    this.#fire();
  }
}
