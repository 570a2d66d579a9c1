import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket } from '../../src/security/token-bucket.ts';
import { KeyedBuckets } from '../../src/security/keyed-buckets.ts';
import { RouteRateLimiter } from '../../src/security/rate-limit.ts';

function fakeClock(start = 1_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => { now += ms; } };
}

describe('TokenBucket', () => {
  it('starts full, allows `burst` at once, then refuses', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 3, clock.now);
    assert.deepEqual([bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()], [true, true, true, false]);
  });

  it('refills at the rate, continuously, and never above burst', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 3, clock.now);
    for (let i = 0; i < 3; i++) bucket.tryTake();
    clock.advance(99);
    assert.equal(bucket.tryTake(), false, '0.99 of a token is not a token');
    clock.advance(1);
    assert.equal(bucket.tryTake(), true, 'one token per 100 ms at 10/s');
    clock.advance(60_000);
    assert.equal(bucket.available, 3);
  });

  it('a refused take costs nothing', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(1, 1, clock.now);
    bucket.tryTake();
    for (let i = 0; i < 100; i++) bucket.tryTake();
    clock.advance(1_000);
    assert.equal(bucket.tryTake(), true);
  });

  it('a clock going backwards neither adds nor removes tokens', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 2, clock.now);
    bucket.tryTake();
    clock.advance(-500);
    assert.equal(bucket.tryTake(), true);
    assert.equal(bucket.tryTake(), false);
  });
});

describe('KeyedBuckets', () => {
  it('keeps a bucket per key', () => {
    const clock = fakeClock();
    const buckets = new KeyedBuckets(1, 1, 10, clock.now);
    assert.equal(buckets.tryTake('a'), true);
    assert.equal(buckets.tryTake('a'), false);
    assert.equal(buckets.tryTake('b'), true);
  });

  it('stays within maxKeys however many keys are invented, forgetting the least recently used', () => {
    const clock = fakeClock();
    const buckets = new KeyedBuckets(1, 1, 100, clock.now);
    buckets.tryTake('steady');
    for (let i = 0; i < 10_000; i++) {
      buckets.tryTake(`random-${i}`);
      // The steady caller keeps using its bucket, so it is never the least recent.
      if (i % 50 === 0) buckets.tryTake('steady');
    }
    assert.equal(buckets.size, 100);
    assert.equal(buckets.tryTake('steady'), false, 'the steady caller kept its (empty) bucket');
  });
});

describe('RouteRateLimiter', () => {
  it('names the limit it refuses for, per identity before the shared bucket', () => {
    const clock = fakeClock();
    const limiter = new RouteRateLimiter('orders', { requests_per_second: 100, burst: 3, per_identity: { requests_per_second: 1, burst: 1, max_identities: 10 } }, clock.now);
    assert.equal(limiter.admit('spiffe://a'), undefined);
    assert.match(limiter.admit('spiffe://a') ?? '', /rate limit of route orders for caller spiffe:\/\/a exceeded \(1\/s, burst 1\)/);
    assert.equal(limiter.admit('spiffe://b'), undefined);
    assert.equal(limiter.admit('spiffe://c'), undefined);
    assert.match(limiter.admit('spiffe://d') ?? '', /rate limit of route orders exceeded \(100\/s, burst 3\)/);
  });
});
