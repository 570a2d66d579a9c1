/** least_connections: the exact minimum of open connections (per weight), ties round robin. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeastConnectionsPolicy } from '../../src/balancer/least-connections.ts';
import { endpoint, testEnvironment, type TestEndpoint } from '../helpers/seeded-random.ts';

function policy(seed = 3): LeastConnectionsPolicy<TestEndpoint> {
  return new LeastConnectionsPolicy<TestEndpoint>(testEnvironment(seed).env);
}

/** Opens `count` connections one after another, each staying open (counted as active). */
function open(p: LeastConnectionsPolicy<TestEndpoint>, count: number): Map<string, number> {
  const placed = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const chosen = p.pick({})!;
    chosen.activeRequests++;
    placed.set(chosen.key, (placed.get(chosen.key) ?? 0) + 1);
  }
  return placed;
}

describe('least_connections', () => {
  it('places 30 long-lived connections over 3 idle endpoints 10/10/10, whatever the starting point', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const p = policy(seed);
      p.setEndpoints(['a', 'b', 'c'].map((key) => endpoint(key)));
      assert.deepEqual([...open(p, 30).values()], [10, 10, 10], `seed ${seed}`);
    }
  });

  it('sends the next 30 to the two others when one endpoint already holds 20', () => {
    const p = policy();
    p.setEndpoints([endpoint('busy', 1, 20), endpoint('b'), endpoint('c')]);
    const placed = open(p, 30);
    assert.equal(placed.get('busy'), undefined);
    assert.deepEqual([placed.get('b'), placed.get('c')], [15, 15]);
  });

  it('rotates ties: picks without a connection staying open go round', () => {
    const p = policy(5);
    const endpoints = ['a', 'b', 'c', 'd'].map((key) => endpoint(key));
    p.setEndpoints(endpoints);
    const first = Array.from({ length: 8 }, () => p.pick({})!.key);
    assert.deepEqual(new Set(first.slice(0, 4)).size, 4, first.join(','));
    assert.deepEqual(first.slice(4), first.slice(0, 4));
  });

  it('fills endpoints in proportion to their weights', () => {
    const p = policy();
    p.setEndpoints([endpoint('heavy', 2), endpoint('light', 1)]);
    assert.deepEqual(Object.fromEntries(open(p, 30)), { heavy: 20, light: 10 });
  });

  it('sees a connection that closes: the emptied endpoint is next', () => {
    const p = policy();
    const [a, b] = [endpoint('a', 1, 5), endpoint('b', 1, 5)];
    p.setEndpoints([a, b]);
    a.activeRequests--;
    assert.equal(p.pick({}), a);
  });
});
