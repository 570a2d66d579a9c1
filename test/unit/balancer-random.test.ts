import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RandomPolicy, WeightTable, weightOf } from '../../src/balancer/random.ts';
import { endpoint, mulberry32, tally, testEnvironment, type TestEndpoint } from '../helpers/seeded-random.ts';

const LARGEST_BELOW_ONE = 1 - Number.EPSILON / 2;

describe('random', () => {
  it('returns undefined for an empty set and the only endpoint of a single set', () => {
    const p = new RandomPolicy<TestEndpoint>(testEnvironment().env);
    assert.equal(p.pick({}), undefined);
    const only = endpoint('a:1', 5);
    p.setEndpoints([only]);
    assert.equal(p.pick({}), only);
  });

  it('spreads evenly with equal weights', () => {
    const p = new RandomPolicy<TestEndpoint>(testEnvironment(3).env);
    p.setEndpoints(['a', 'b', 'c', 'd'].map((k) => endpoint(k)));
    const counts = tally(() => p.pick({}), 8000);
    for (const count of counts.values()) assert.ok(Math.abs(count - 2000) < 150, JSON.stringify([...counts]));
  });

  it('picks in proportion to weight', () => {
    const p = new RandomPolicy<TestEndpoint>(testEnvironment(4).env);
    p.setEndpoints([endpoint('a', 1), endpoint('b', 2), endpoint('c', 7)]);
    const counts = tally(() => p.pick({}), 20_000);
    for (const [key, expected] of [['a', 2000], ['b', 4000], ['c', 14_000]] as const) {
      assert.ok(Math.abs(counts.get(key)! - expected) < expected * 0.08, JSON.stringify([...counts]));
    }
  });

  it('does not keep a reference to the caller array', () => {
    const p = new RandomPolicy<TestEndpoint>(testEnvironment().env);
    const list = [endpoint('a'), endpoint('b')];
    p.setEndpoints(list);
    list.length = 0;
    assert.ok(p.pick({}) !== undefined);
  });
});

describe('WeightTable', () => {
  it('never draws outside the table, even for r at the edges of [0, 1)', () => {
    for (const weights of [[1, 1, 1], [1, 2, 3], [0.1, 0.2, 0.7], [1e9, 1, 1]]) {
      const table = new WeightTable();
      table.rebuild(weights.map((w, i) => endpoint(`e${i}`, w)));
      for (const r of [0, LARGEST_BELOW_ONE, 0.5]) {
        const i = table.draw(r);
        assert.ok(i >= 0 && i < weights.length);
        for (let exclude = 0; exclude < weights.length; exclude++) {
          const j = table.drawOther(r, exclude);
          assert.ok(j >= 0 && j < weights.length && j !== exclude, `weights ${weights} r ${r} exclude ${exclude} -> ${j}`);
        }
      }
    }
  });

  it('drawOther samples the remaining endpoints in proportion to weight', () => {
    const table = new WeightTable();
    table.rebuild([endpoint('a', 1), endpoint('b', 2), endpoint('c', 3), endpoint('d', 4)]);
    const random = mulberry32(5);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 30_000; i++) counts[table.drawOther(random(), 2)]!++;
    assert.equal(counts[2], 0);
    // Without c (weight 3), a:b:d = 1:2:4 of 30 000.
    for (const [index, expected] of [[0, 30_000 / 7], [1, 60_000 / 7], [3, 120_000 / 7]] as const) {
      assert.ok(Math.abs(counts[index]! - expected) < expected * 0.06, counts.join(','));
    }
  });

  it('treats a non-positive or non-finite weight as 1', () => {
    for (const weight of [0, -2, Number.NaN, Infinity]) assert.equal(weightOf(endpoint('x', weight)), 1);
    assert.equal(weightOf(endpoint('x', 2.5)), 2.5);
  });
});
