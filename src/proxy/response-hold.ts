/**
 * The wait an attempt's first response message is held for its trailers
 * (see Attempt.onResponseData): every hold lasts the same RESPONSE_HOLD_MS, so
 * holds end in the order they began, and one timer serves them all, armed for
 * the oldest. A timer per RPC was an allocation and a timer-list insertion on
 * every unary call.
 */

/** What holds: told to release once its time is up, if it still holds. */
export interface Holding {
  /** Still waiting; false once released (by its trailers, or because the attempt ended). */
  holding: boolean;
  releaseHeld(): void;
}

export class HoldQueue {
  readonly #holdMs: number;
  #held: (Holding | undefined)[] = [];
  #until: number[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(holdMs: number) {
    this.#holdMs = holdMs;
  }

  /** Starts `holding`'s wait; it is released RESPONSE_HOLD_MS from now unless it lets go first. */
  add(holding: Holding): void {
    holding.holding = true;
    this.#held.push(holding);
    this.#until.push(performance.now() + this.#holdMs);
    if (this.#timer === undefined) this.#arm(this.#holdMs);
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(expire, Math.max(1, ms), this);
    this.#timer.unref();
  }

  /** Releases every hold whose time is up; re-arms for the oldest left. */
  expire(): void {
    this.#timer = undefined;
    const now = performance.now();
    const held = this.#held;
    // Timers fire on a millisecond clock: a hold due within the next half millisecond is due now.
    while (this.#head < held.length && this.#until[this.#head]! <= now + 0.5) {
      const holding = held[this.#head];
      held[this.#head++] = undefined;
      if (holding?.holding) {
        holding.holding = false;
        holding.releaseHeld();
      }
    }
    if (this.#head === held.length) {
      held.length = 0;
      this.#until.length = 0;
      this.#head = 0;
      return;
    }
    if (this.#head > 1024) {
      this.#held = held.slice(this.#head);
      this.#until = this.#until.slice(this.#head);
      this.#head = 0;
    }
    this.#arm(this.#until[this.#head]! - now);
  }
}

function expire(queue: HoldQueue): void {
  queue.expire();
}
