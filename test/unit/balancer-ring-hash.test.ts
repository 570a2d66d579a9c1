import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RingHashPolicy } from '../../src/balancer/ring-hash.ts';
import { endpoint, mulberry32, tally, testEnvironment, type TestEndpoint } from '../helpers/seeded-random.ts';

function policy(ringSize?: number, seed = 11): RingHashPolicy<TestEndpoint> {
  return new RingHashPolicy<TestEndpoint>(testEnvironment(seed).env, { ringSize });
}

const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

function owners(p: RingHashPolicy<TestEndpoint>, keys = KEYS): string[] {
  return keys.map((hashKey) => p.pick({ hashKey })!.key);
}

function countBy(values: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

const five = (): TestEndpoint[] => ['10.0.0.1:50051', '10.0.0.2:50051', '10.0.0.3:50051', '10.0.0.4:50051', '10.0.0.5:50051'].map((k) => endpoint(k));

describe('ring_hash', () => {
  it('returns undefined for an empty set and the only endpoint of a single set', () => {
    const p = policy();
    assert.equal(p.pick({ hashKey: 'x' }), undefined);
    assert.equal(p.pick({}), undefined);
    const only = endpoint('a:1');
    p.setEndpoints([only]);
    assert.equal(p.pick({ hashKey: 'x' }), only);
    assert.equal(p.pick({}), only);
  });

  it('sends the same key to the same endpoint every time', () => {
    const p = policy();
    p.setEndpoints(five());
    const first = p.pick({ hashKey: 'session-42' });
    for (let i = 0; i < 1000; i++) assert.equal(p.pick({ hashKey: 'session-42' }), first);
  });

  it('keeps every key on its endpoint when the same set comes back in another order, as new objects', () => {
    const p = policy();
    p.setEndpoints(five());
    const before = owners(p);
    const reordered = five().reverse();
    p.setEndpoints(reordered);
    assert.deepEqual(owners(p), before);
    // ...and returns the caller's current objects, whose activeRequests the cluster maintains.
    assert.ok(reordered.includes(p.pick({ hashKey: 'user-1' })!));
  });

  it('builds the same ring on every proxy: independent instances agree', () => {
    const a = policy(undefined, 1);
    const b = policy(undefined, 2);
    a.setEndpoints(five());
    b.setEndpoints(five().reverse());
    assert.deepEqual(owners(a), owners(b));
  });

  it('moves only the removed endpoint\'s keys when one of five leaves', () => {
    const p = policy();
    const set = five();
    p.setEndpoints(set);
    const before = owners(p);
    const removed = set[2]!.key;
    p.setEndpoints(set.filter((e) => e.key !== removed));
    const after = owners(p);
    let moved = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === after[i]) continue;
      assert.equal(before[i], removed, `${KEYS[i]} moved from ${before[i]} to ${after[i]}`);
      moved++;
    }
    assert.equal(moved, before.filter((k) => k === removed).length);
    assert.ok(moved > 1000 && moved < 3000, `removed endpoint owned ${moved} of 10 000 keys`);
  });

  it('moves keys only onto the newcomer when an endpoint joins', () => {
    const p = policy();
    const set = five();
    p.setEndpoints(set.slice(0, 4));
    const before = owners(p);
    p.setEndpoints(set);
    const after = owners(p);
    let moved = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === after[i]) continue;
      assert.equal(after[i], set[4]!.key);
      moved++;
    }
    assert.ok(moved > 1000 && moved < 3000, `newcomer took ${moved} of 10 000 keys`);
  });

  it('splits random keys evenly over equal endpoints (within 25%)', () => {
    const p = policy();
    p.setEndpoints(five().slice(0, 4));
    const random = mulberry32(3);
    const keys = Array.from({ length: 10_000 }, () => Math.floor(random() * 2 ** 53).toString(36));
    const counts = countBy(owners(p, keys));
    assert.equal(counts.size, 4);
    for (const count of counts.values()) assert.ok(Math.abs(count - 2500) < 2500 * 0.25, JSON.stringify([...counts]));
  });

  it('splits keys in proportion to weight', () => {
    const p = policy(4096);
    p.setEndpoints([endpoint('a:1', 1), endpoint('b:1', 3)]);
    const counts = countBy(owners(p));
    assert.ok(Math.abs(counts.get('b:1')! / 10_000 - 0.75) < 0.04, JSON.stringify([...counts]));
  });

  it('rebuilds when a weight changes', () => {
    const p = policy(4096);
    p.setEndpoints([endpoint('a:1', 1), endpoint('b:1', 1)]);
    const even = countBy(owners(p)).get('b:1')!;
    p.setEndpoints([endpoint('a:1', 1), endpoint('b:1', 9)]);
    const heavy = countBy(owners(p)).get('b:1')!;
    assert.ok(even < 6000 && heavy > 8500, `${even} then ${heavy}`);
  });

  it('gives every endpoint some keys even with a ring barely larger than the set', () => {
    const p = policy(24);
    p.setEndpoints(Array.from({ length: 20 }, (_, i) => endpoint(`e${i}:1`)));
    assert.equal(countBy(owners(p)).size, 20);
  });

  it('spreads RPCs without a hash key randomly', () => {
    const p = policy();
    p.setEndpoints(five().slice(0, 4));
    const counts = tally(() => p.pick({}), 8000);
    assert.equal(counts.size, 4);
    for (const count of counts.values()) assert.ok(Math.abs(count - 2000) < 500, JSON.stringify([...counts]));
  });
});
