import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PeakEwmaPolicy } from '../../src/balancer/peak-ewma.ts';
import { LeastRequestPolicy } from '../../src/balancer/least-request.ts';
import { endpoint, testEnvironment, type TestEndpoint } from '../helpers/seeded-random.ts';

/** Runs `rounds` picks; the endpoint `failing` answers every RPC with a 1 ms failure, the others in 10 ms. */
function simulate(policy: PeakEwmaPolicy<TestEndpoint> | LeastRequestPolicy<TestEndpoint>, clock: { now: number }, failing: TestEndpoint, rounds: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < rounds; i++) {
    const picked = policy.pick({})!;
    counts.set(picked.key, (counts.get(picked.key) ?? 0) + 1);
    clock.now += 1;
    policy.onRpcEnd(picked, picked === failing ? 1 : 10, picked === failing);
  }
  return counts;
}

describe('a fast-failing endpoint does not attract traffic', () => {
  it('peak_ewma: an endpoint answering errors in 1 ms gets little traffic, though the others take 10 ms', () => {
    const { env, clock } = testEnvironment(7);
    const policy = new PeakEwmaPolicy<TestEndpoint>(env);
    const endpoints = [endpoint('a'), endpoint('b'), endpoint('fails')];
    policy.setEndpoints(endpoints);
    simulate(policy, clock, endpoints[2]!, 300);
    const counts = simulate(policy, clock, endpoints[2]!, 1_000);
    assert.ok((counts.get('fails') ?? 0) < 100, `the failing endpoint got ${counts.get('fails')} of 1000`);
  });

  it('peak_ewma without the failure flag would prefer it (so the penalty is what protects)', () => {
    const { env, clock } = testEnvironment(7);
    const policy = new PeakEwmaPolicy<TestEndpoint>(env);
    const endpoints = [endpoint('a'), endpoint('b'), endpoint('fast')];
    policy.setEndpoints(endpoints);
    const counts = new Map<string, number>();
    for (let i = 0; i < 1_000; i++) {
      const picked = policy.pick({})!;
      counts.set(picked.key, (counts.get(picked.key) ?? 0) + 1);
      clock.now += 1;
      policy.onRpcEnd(picked, picked.key === 'fast' ? 1 : 10, false);
    }
    assert.ok((counts.get('fast') ?? 0) > 400);
  });

  it('least_request: failures count as load that fades, so a recovered endpoint competes again', () => {
    const { env, clock } = testEnvironment(3);
    const policy = new LeastRequestPolicy<TestEndpoint>(env);
    const endpoints = [endpoint('a'), endpoint('b'), endpoint('fails')];
    policy.setEndpoints(endpoints);
    const counts = simulate(policy, clock, endpoints[2]!, 1_000);
    assert.ok((counts.get('fails') ?? 0) < 150, `the failing endpoint got ${counts.get('fails')} of 1000`);
    clock.now += 10_000;
    const after = new Map<string, number>();
    for (let i = 0; i < 900; i++) {
      const picked = policy.pick({})!;
      after.set(picked.key, (after.get(picked.key) ?? 0) + 1);
    }
    assert.ok((after.get('fails') ?? 0) > 200, `after recovery it got ${after.get('fails')} of 900`);
  });
});
