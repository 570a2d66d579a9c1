import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RoundRobinPolicy } from '../../src/balancer/round-robin.ts';
import { endpoint, tally, testEnvironment, type TestEndpoint } from '../helpers/seeded-random.ts';

function policy(seed = 1): RoundRobinPolicy<TestEndpoint> {
  return new RoundRobinPolicy<TestEndpoint>(testEnvironment(seed).env);
}

function keys(p: RoundRobinPolicy<TestEndpoint>, count: number): string[] {
  return Array.from({ length: count }, () => p.pick({})?.key ?? '-');
}

function longestRun(sequence: string[], key: string): number {
  let longest = 0;
  let run = 0;
  for (const k of sequence) {
    run = k === key ? run + 1 : 0;
    longest = Math.max(longest, run);
  }
  return longest;
}

describe('round_robin', () => {
  it('returns undefined for an empty set, before and after having endpoints', () => {
    const p = policy();
    assert.equal(p.pick({}), undefined);
    p.setEndpoints([endpoint('a:1')]);
    p.setEndpoints([]);
    assert.equal(p.pick({}), undefined);
  });

  it('always returns the only endpoint', () => {
    const p = policy();
    const only = endpoint('a:1', 3);
    p.setEndpoints([only]);
    for (let i = 0; i < 10; i++) assert.equal(p.pick({}), only);
  });

  it('splits picks exactly with equal weights', () => {
    for (const [k, picks] of [[3, 1000], [4, 10], [7, 7001]] as const) {
      const p = policy(k);
      p.setEndpoints(Array.from({ length: k }, (_, i) => endpoint(`e${i}:1`, 2)));
      const counts = [...tally(() => p.pick({}), picks).values()];
      assert.equal(counts.length, k);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `${k} endpoints, ${picks} picks: ${counts.join(',')}`);
    }
  });

  it('starts the rotation at a random endpoint', () => {
    const firsts = new Set<string>();
    for (let seed = 1; seed <= 40; seed++) {
      const p = policy(seed);
      p.setEndpoints([endpoint('a:1'), endpoint('b:1'), endpoint('c:1'), endpoint('d:1')]);
      firsts.add(p.pick({})!.key);
    }
    assert.equal(firsts.size, 4);
  });

  it('interleaves weights 5,1,1 smoothly: a a X a Y a a, repeating', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const p = policy(seed);
      p.setEndpoints([endpoint('a', 5), endpoint('b', 1), endpoint('c', 1)]);
      const sequence = keys(p, 700);
      const pattern = sequence.slice(0, 7).map((k) => (k === 'a' ? 'a' : 'x')).join('');
      assert.equal(pattern, 'aaxaxaa', sequence.slice(0, 7).join(''));
      for (let start = 0; start + 7 <= sequence.length; start++) {
        const window = sequence.slice(start, start + 7);
        assert.equal(window.filter((k) => k === 'b').length, 1);
        assert.equal(window.filter((k) => k === 'c').length, 1);
      }
      // A naive weighted round robin sends a run of 5; the smooth one never more than 4 (across the cycle seam).
      assert.ok(longestRun(sequence, 'a') <= 4);
    }
  });

  it('gives exact weighted shares', () => {
    const p = policy();
    p.setEndpoints([endpoint('a', 3), endpoint('b', 2), endpoint('c', 1)]);
    const counts = tally(() => p.pick({}), 600);
    assert.deepEqual([counts.get('a'), counts.get('b'), counts.get('c')], [300, 200, 100]);
  });

  it('continues the rotation after the last pick when an endpoint is added', () => {
    const [a, b, c, d] = [endpoint('a'), endpoint('b'), endpoint('c'), endpoint('d')];
    const p = policy();
    p.setEndpoints([a, b, c]);
    const before = keys(p, 4);
    const last = before[3]!;
    p.setEndpoints([a, b, c, d]);
    const after = keys(p, 4);
    const order = ['a', 'b', 'c', 'd'];
    const expected = [1, 2, 3, 4].map((step) => order[(order.indexOf(last) + step) % 4]);
    assert.deepEqual(after, expected);
  });

  it('keeps an exact split across removals and frequent setEndpoints calls', () => {
    const all = ['a', 'b', 'c', 'd', 'e'].map((k) => endpoint(k));
    const p = policy();
    p.setEndpoints(all);
    keys(p, 3);
    const remaining = all.filter((e) => e.key !== 'c');
    const counts = tally(() => {
      p.setEndpoints(remaining.slice()); // a new array with the same objects before every pick
      return p.pick({});
    }, 400);
    assert.deepEqual([...counts.values()], [100, 100, 100, 100]);
  });

  it('keeps the smooth weighted state of endpoints that stay across setEndpoints', () => {
    const set = [endpoint('a', 5), endpoint('b', 1), endpoint('c', 1)];
    const p = policy();
    p.setEndpoints(set);
    const sequence: string[] = [];
    for (let i = 0; i < 700; i++) {
      p.setEndpoints([...set].reverse());
      sequence.push(p.pick({})!.key);
    }
    for (let start = 0; start + 7 <= sequence.length; start += 7) {
      const window = sequence.slice(start, start + 7);
      assert.equal(window.filter((k) => k === 'a').length, 5, window.join(''));
    }
    assert.ok(longestRun(sequence, 'a') <= 4);
  });

  it('keeps weighted shares exact after an endpoint leaves mid-cycle', () => {
    const [a, b, c] = [endpoint('a', 3), endpoint('b', 2), endpoint('c', 4)];
    const p = policy();
    p.setEndpoints([a, b, c]);
    keys(p, 5);
    p.setEndpoints([a, b]);
    const counts = tally(() => p.pick({}), 500);
    // Exact per cycle of 5 up to the carried-over position: within one pick of 300/200.
    assert.ok(Math.abs(counts.get('a')! - 300) <= 1 && Math.abs(counts.get('b')! - 200) <= 1, JSON.stringify([...counts]));
  });

  it('treats an invalid weight as 1 and does not throw', () => {
    const p = policy();
    p.setEndpoints([endpoint('a', 0), endpoint('b', Number.NaN), endpoint('c', 2)]);
    const counts = tally(() => p.pick({}), 400);
    assert.deepEqual([counts.get('a'), counts.get('b'), counts.get('c')], [100, 100, 200]);
  });
});
