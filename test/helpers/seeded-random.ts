/** Deterministic randomness and time for policy tests. */

import type { PolicyEnvironment } from '../../src/balancer/policy.ts';

/** mulberry32: a tiny 32-bit PRNG, uniform in [0, 1). Good enough for tests, and exactly repeatable. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A PolicyEnvironment with a seeded random source and a clock that moves only when the test sets `clock.now`. */
export function testEnvironment(seed = 1): { env: PolicyEnvironment; clock: { now: number } } {
  const clock = { now: 0 };
  const random = mulberry32(seed);
  return { env: { now: () => clock.now, random }, clock };
}

/** An endpoint whose activeRequests the test can set. */
export interface TestEndpoint {
  key: string;
  weight: number;
  activeRequests: number;
}

export function endpoint(key: string, weight = 1, activeRequests = 0): TestEndpoint {
  return { key, weight, activeRequests };
}

/** Picks `count` times and tallies the picked keys. */
export function tally(pick: () => TestEndpoint | undefined, count: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const picked = pick();
    if (picked !== undefined) counts.set(picked.key, (counts.get(picked.key) ?? 0) + 1);
  }
  return counts;
}
