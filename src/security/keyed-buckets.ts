/**
 * Token buckets by key (a caller identity, a peer address), bounded in
 * number: past `maxKeys` the least recently used bucket is forgotten, so a
 * caller inventing identities cannot grow memory. A forgotten key starts
 * again with a full bucket, which only ever errs towards admitting; with
 * `maxKeys` far above the number of real callers it never happens to them.
 */
import { TokenBucket } from './token-bucket.ts';

export class KeyedBuckets {
  readonly #ratePerSecond: number;
  readonly #burst: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  /** Map iteration order is insertion order: re-inserting on use keeps the least recent first. */
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(ratePerSecond: number, burst: number, maxKeys: number, now: () => number = performance.now.bind(performance)) {
    this.#ratePerSecond = ratePerSecond;
    this.#burst = burst;
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  /** Takes one token from `key`'s bucket, creating it (full) if needed. */
  tryTake(key: string): boolean {
    let bucket = this.#buckets.get(key);
    if (bucket) {
      this.#buckets.delete(key);
    } else {
      bucket = new TokenBucket(this.#ratePerSecond, this.#burst, this.#now);
      if (this.#buckets.size >= this.#maxKeys) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
    }
    this.#buckets.set(key, bucket);
    return bucket.tryTake();
  }

  get size(): number {
    return this.#buckets.size;
  }
}
