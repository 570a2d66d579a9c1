import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { LeastRequestPolicy } from '../../src/balancer/least-request.ts';
import { endpoint, mulberry32, tally, testEnvironment, type TestEndpoint } from '../helpers/seeded-random.ts';

function policy(bias?: number, seed = 7): LeastRequestPolicy<TestEndpoint> {
  return new LeastRequestPolicy<TestEndpoint>(testEnvironment(seed).env, { activeRequestBias: bias });
}

function share(counts: Map<string, number>, key: string, total: number): number {
  return (counts.get(key) ?? 0) / total;
}

describe('least_request', () => {
  it('returns undefined for an empty set and the only endpoint of a single set', () => {
    const p = policy();
    assert.equal(p.pick({}), undefined);
    const only = endpoint('a:1', 1, 99);
    p.setEndpoints([only]);
    assert.equal(p.pick({}), only);
    p.setEndpoints([]);
    assert.equal(p.pick({}), undefined);
  });

  it('spreads evenly when all endpoints are idle', () => {
    const p = policy();
    p.setEndpoints(['a', 'b', 'c'].map((k) => endpoint(k)));
    const counts = tally(() => p.pick({}), 3000);
    for (const key of ['a', 'b', 'c']) assert.ok(Math.abs(counts.get(key)! - 1000) < 100, JSON.stringify([...counts]));
  });

  it('starves an endpoint with many active requests while the others have 0 or 1', () => {
    const p = policy();
    const busy = endpoint('busy', 1, 50);
    const others = ['a', 'b', 'c'].map((k) => endpoint(k));
    p.setEndpoints([busy, ...others]);
    const jitter = mulberry32(99);
    const counts = tally(() => {
      for (const e of others) e.activeRequests = jitter() < 0.5 ? 0 : 1;
      return p.pick({});
    }, 1000);
    assert.equal(counts.get('busy') ?? 0, 0);
    for (const e of others) assert.ok(counts.get(e.key)! > 200);
  });

  it('draws two distinct candidates: of two endpoints the idler always wins', () => {
    const p = policy();
    p.setEndpoints([endpoint('a', 1, 1), endpoint('b', 1, 0)]);
    assert.equal(tally(() => p.pick({}), 1000).get('b'), 1000);
  });

  it('balances in-flight requests when each pick adds load', () => {
    const p = policy();
    const set = ['a', 'b', 'c', 'd'].map((k) => endpoint(k));
    p.setEndpoints(set);
    for (let i = 0; i < 400; i++) p.pick({})!.activeRequests++;
    const active = set.map((e) => e.activeRequests);
    assert.ok(Math.max(...active) - Math.min(...active) <= 3, active.join(','));
  });

  it('splits idle traffic by weight when weights differ', () => {
    const p = policy();
    p.setEndpoints([endpoint('heavy', 3), endpoint('light', 1)]);
    const counts = tally(() => p.pick({}), 4000);
    assert.ok(Math.abs(share(counts, 'heavy', 4000) - 0.75) < 0.03, JSON.stringify([...counts]));
  });

  it('compares activeRequests^bias / weight when weights differ', () => {
    const heavy = endpoint('heavy', 2);
    const light = endpoint('light', 1);
    const winner = (bias: number, heavyActive: number, lightActive: number): Set<string> => {
      const p = policy(bias);
      p.setEndpoints([heavy, light]);
      heavy.activeRequests = heavyActive;
      light.activeRequests = lightActive;
      return new Set(tally(() => p.pick({}), 200).keys());
    };
    assert.deepEqual(winner(1, 4, 1), new Set(['light'])); // 4/2 > 1/1
    assert.deepEqual(winner(1, 2, 2), new Set(['heavy'])); // 2/2 < 2/1
    assert.deepEqual(winner(1, 3, 2), new Set(['heavy'])); // 1.5 < 2
    assert.deepEqual(winner(2, 3, 2), new Set(['light'])); // 9/2 > 4/1: a higher bias weighs load more
  });

  it('ignores load with bias 0 and unequal weights (weighted random)', () => {
    const p = policy(0);
    p.setEndpoints([endpoint('heavy', 3, 100), endpoint('light', 1, 0)]);
    const counts = tally(() => p.pick({}), 4000);
    assert.ok(Math.abs(share(counts, 'heavy', 4000) - 0.75) < 0.03, JSON.stringify([...counts]));
  });

  it('keeps comparing load with bias 0 when weights are equal, as Envoy does', () => {
    const p = policy(0);
    p.setEndpoints([endpoint('a', 1, 5), endpoint('b', 1, 0)]);
    assert.equal(tally(() => p.pick({}), 500).get('b'), 500);
  });

  it('falls back to the default bias for invalid options', () => {
    const p = policy(Number.NaN);
    p.setEndpoints([endpoint('heavy', 2, 4), endpoint('light', 1, 1)]);
    assert.deepEqual([...tally(() => p.pick({}), 100).keys()], ['light']);
  });
});
