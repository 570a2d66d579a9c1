/**
 * Smooth weighted round robin (as nginx balances upstreams): each pick adds
 * every choice's weight to its running score, takes the highest, and
 * subtracts the total from it. Over any run of `total` picks each choice is
 * taken exactly `weight` times, spread out rather than in blocks, so a 70/30
 * split holds per request from the first RPCs on, without randomness.
 */
export class WeightedPicker<T> {
  readonly #choices: readonly T[];
  readonly #weights: readonly number[];
  readonly #scores: number[];
  readonly #total: number;

  /** `entries` with weight 0 are never picked; at least one weight must be above 0. */
  constructor(entries: readonly (readonly [choice: T, weight: number])[]) {
    const kept = entries.filter(([, weight]) => weight > 0);
    if (kept.length === 0) throw new Error('WeightedPicker needs a weight above 0');
    this.#choices = kept.map(([choice]) => choice);
    this.#weights = kept.map(([, weight]) => weight);
    this.#scores = kept.map(() => 0);
    this.#total = this.#weights.reduce((sum, weight) => sum + weight, 0);
  }

  pick(): T {
    let best = 0;
    for (let i = 0; i < this.#scores.length; i++) {
      this.#scores[i]! += this.#weights[i]!;
      if (this.#scores[i]! > this.#scores[best]!) best = i;
    }
    this.#scores[best]! -= this.#total;
    return this.#choices[best]!;
  }
}
