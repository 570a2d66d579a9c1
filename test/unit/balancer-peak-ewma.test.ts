import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { PeakEwmaPolicy } from '../../src/balancer/peak-ewma.ts';
import { endpoint, mulberry32, tally, testEnvironment, type TestEndpoint } from '../helpers/seeded-random.ts';

/**
 * Closed-form traffic against a policy on a fake clock: every simulated millisecond, RPCs that are due finish
 * (activeRequests--, onRpcEnd with their latency), then `perMs` new RPCs are picked and started with the
 * latency `latencyOf` gives their endpoint at that moment.
 */
class Simulation {
  readonly env = testEnvironment(5);
  readonly policy: PeakEwmaPolicy<TestEndpoint>;
  readonly endpoints: TestEndpoint[];
  readonly latencyMs = new Map<string, number>();
  readonly #inFlight: { startedAt: number; endsAt: number; endpoint: TestEndpoint }[] = [];

  constructor(keys: string[], options: { decayMs?: number } = {}) {
    this.policy = new PeakEwmaPolicy<TestEndpoint>(this.env.env, options);
    this.endpoints = keys.map((key) => endpoint(key));
    for (const key of keys) this.latencyMs.set(key, 1);
    this.policy.setEndpoints(this.endpoints);
  }

  get now(): number {
    return this.env.clock.now;
  }

  /** Runs `durationMs` of traffic and returns the picks per key. */
  run(durationMs: number, perMs = 2, counts = new Map(this.endpoints.map((e) => [e.key, 0]))): Map<string, number> {
    const end = this.now + durationMs;
    while (this.now < end) {
      this.env.clock.now++;
      this.#step(perMs, counts);
    }
    return counts;
  }

  /**
   * The proxy itself stalls for `ms` (GC, CPU taken by other processes): nothing finishes or starts meanwhile.
   * Then every RPC that ended during the stall is seen with the stall in its latency, whatever its endpoint, and
   * the requests that arrived during it are picked in one burst.
   */
  pause(ms: number, perMs = 2, counts = new Map(this.endpoints.map((e) => [e.key, 0]))): Map<string, number> {
    this.env.clock.now += ms;
    this.#step(perMs * ms, counts);
    return counts;
  }

  #step(picks: number, counts: Map<string, number>): void {
    for (let i = this.#inFlight.length - 1; i >= 0; i--) {
      const rpc = this.#inFlight[i]!;
      if (rpc.endsAt > this.now) continue;
      this.#inFlight.splice(i, 1);
      rpc.endpoint.activeRequests--;
      this.policy.onRpcEnd(rpc.endpoint, this.now - rpc.startedAt);
    }
    for (let k = 0; k < picks; k++) {
      const picked = this.policy.pick({})!;
      picked.activeRequests++;
      counts.set(picked.key, counts.get(picked.key)! + 1);
      this.#inFlight.push({ startedAt: this.now, endsAt: this.now + this.latencyMs.get(picked.key)!, endpoint: picked });
    }
  }
}

/**
 * Closed-loop traffic on a fake clock: `inFlight` callers, each sending its next RPC when the last one answers,
 * as a client with a fixed number of outstanding RPCs does. Latencies are drawn from `latency` with a seeded
 * random source of their own.
 */
function closedLoop(options: {
  seed: number;
  inFlight: number;
  total: number;
  latency: (key: string, first: boolean, random: () => number) => number;
}): Map<string, number> {
  const { env, clock } = testEnvironment(options.seed);
  const random = mulberry32(options.seed * 7919 + 1);
  const policy = new PeakEwmaPolicy<TestEndpoint>(env);
  const endpoints = ['a', 'b', 'c'].map((key) => endpoint(key));
  policy.setEndpoints(endpoints);
  const counts = new Map(endpoints.map((e) => [e.key, 0]));
  const answered = new Set<string>();
  const inFlight: { endsAt: number; startedAt: number; endpoint: TestEndpoint }[] = [];
  let sent = 0;
  const send = () => {
    const picked = policy.pick({})!;
    picked.activeRequests++;
    counts.set(picked.key, counts.get(picked.key)! + 1);
    const first = !answered.has(picked.key);
    answered.add(picked.key);
    inFlight.push({ startedAt: clock.now, endsAt: clock.now + options.latency(picked.key, first, random), endpoint: picked });
    sent++;
  };
  for (let i = 0; i < options.inFlight; i++) send();
  while (inFlight.length > 0) {
    inFlight.sort((x, y) => x.endsAt - y.endsAt);
    const done = inFlight.shift()!;
    clock.now = done.endsAt;
    done.endpoint.activeRequests--;
    policy.onRpcEnd(done.endpoint, done.endsAt - done.startedAt);
    if (sent < options.total) send();
  }
  return counts;
}

/**
 * Latencies shaped like those measured through the proxy on a shared machine: log-normal around `medianMs`
 * (p90 about 1.8x the median), 2% of responses 10x slower, 0.2% delayed 20-40 ms (a GC pause, the CPU taken
 * away), and each endpoint's first response 5 ms later (its connection is set up).
 */
const noisy = (medianMs: number) => (_key: string, first: boolean, random: () => number): number => {
  const gaussian = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  let ms = medianMs * Math.exp(0.45 * gaussian);
  const spike = random();
  if (spike < 0.002) ms += 20 + 20 * random();
  else if (spike < 0.02) ms *= 10;
  return first ? ms + 5 : ms;
};

const maxOverMin = (counts: Map<string, number>) => Math.max(...counts.values()) / Math.min(...counts.values());

function share(counts: Map<string, number>, key: string): number {
  let total = 0;
  for (const count of counts.values()) total += count;
  return counts.get(key)! / total;
}

describe('peak_ewma', () => {
  it('returns undefined for an empty set and the only endpoint of a single set', () => {
    const p = new PeakEwmaPolicy<TestEndpoint>(testEnvironment().env);
    assert.equal(p.pick({}), undefined);
    const only = endpoint('a:1');
    p.onRpcEnd(only, 500);
    p.setEndpoints([only]);
    assert.equal(p.pick({}), only);
  });

  it('spreads evenly over equally fast endpoints', () => {
    const sim = new Simulation(['a', 'b', 'c']);
    const counts = sim.run(5_000);
    for (const key of ['a', 'b', 'c']) assert.ok(Math.abs(share(counts, key) - 1 / 3) < 0.03, JSON.stringify([...counts]));
  });

  it('shifts load away from an endpoint that turns slow within a second, and keeps it away', () => {
    const sim = new Simulation(['a', 'b', 'c']);
    sim.run(5_000);
    sim.latencyMs.set('b', 50);
    const next1000 = sim.run(500); // 2 picks per ms: the next 1000 picks
    assert.ok(share(next1000, 'b') < 0.1, JSON.stringify([...next1000]));
    const following = sim.run(10_000);
    assert.ok(share(following, 'b') < 0.01, JSON.stringify([...following]));
  });

  it('keeps a slow endpoint avoided after a proxy stall made every endpoint measure slow once', () => {
    const sim = new Simulation(['a', 'b', 'c']);
    sim.run(5_000, 4);
    sim.latencyMs.set('b', 50);
    sim.run(1_000, 4);
    // A 40 ms pause of the proxy (GC, a shared CPU): a's and c's responses measure up to 40 ms once. The burst
    // picked right after it is not what this checks; the traffic after it is: a and c must look fast again soon,
    // not stay near b's 50 ms for seconds (which gave b ~0.9% of the next 2 s with a purely time-weighted pull).
    sim.pause(40, 4);
    const after = sim.run(2_000, 4);
    assert.ok(share(after, 'b') < 0.002, JSON.stringify([...after]));
  });

  it('reacts to a single slow response at once (peak), and tries the endpoint again a few picks later', () => {
    const { env, clock } = testEnvironment(9);
    const p = new PeakEwmaPolicy<TestEndpoint>(env);
    const [a, b] = [endpoint('a'), endpoint('b')];
    p.setEndpoints([a, b]);
    for (let t = 1; t <= 100; t++) {
      clock.now = t;
      p.onRpcEnd(a, 1);
      p.onRpcEnd(b, 1);
    }
    p.onRpcEnd(b, 100);
    // One RPC at a time, each answered in 1 ms.
    const picks = Array.from({ length: 50 }, () => {
      const picked = p.pick({})!;
      p.onRpcEnd(picked, 1);
      return picked.key;
    });
    assert.deepEqual(picks.slice(0, 5), ['a', 'a', 'a', 'a', 'a'], `avoided at once: ${picks.join('')}`);
    // Its excess over the floor (half of typical, ~0.5 ms) shrinks by e every 2 picks (one slow response in a
    // row doubles the 1 it takes): under a's 1 ms after 2 * ln(99.5 / 0.5) = 10.6 picks, then a bit more as
    // typical settles back from the spike.
    assert.equal(picks.indexOf('b'), 12, picks.join(''));
    assert.ok(picks.filter((key) => key === 'b').length >= 15, 'and it takes its share again once it answers fast');
  });

  it('identical backends stay within 1.2x at one RPC in flight, though some responses spike and first ones are slow', () => {
    // Sequential RPCs over one connection (the report: 28 / 1,410 / 1,562 of 3,000; up to 16.8x here before).
    const ratios = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((seed) => maxOverMin(closedLoop({ seed, inFlight: 1, total: 3_000, latency: noisy(0.25) })));
    assert.ok(Math.max(...ratios) <= 1.2, ratios.map((r) => r.toFixed(2)).join(' '));
  });

  it('identical backends stay within 1.2x at 32 RPCs in flight', () => {
    // At 32 in flight the proxy queues: its RPCs took 4 ms (median) where one at a time took 0.25 ms.
    const ratios = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((seed) => maxOverMin(closedLoop({ seed, inFlight: 32, total: 3_000, latency: noisy(4) })));
    assert.ok(Math.max(...ratios) <= 1.2, ratios.map((r) => r.toFixed(2)).join(' '));
  });

  it('an endpoint 50 ms slower gets under 1% of sequential RPCs, and one 5x slower well under its third', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const slow = closedLoop({ seed, inFlight: 1, total: 10_000, latency: (key, first, random) => noisy(0.25)(key, first, random) + (key === 'b' ? 50 : 0) });
      assert.ok(share(slow, 'b') < 0.01, `seed ${seed}: ${JSON.stringify([...slow])}`);
      const slower = closedLoop({ seed, inFlight: 4, total: 10_000, latency: (key, first, random) => noisy(0.25)(key, first, random) * (key === 'b' ? 5 : 1) });
      assert.ok(share(slower, 'b') < 0.1, `seed ${seed}: ${JSON.stringify([...slower])}`);
    }
  });

  it('probes a slow endpoint that gets no traffic again, rarely, while it stays slow', () => {
    const sim = new Simulation(['a', 'b', 'c']);
    sim.run(2_000);
    sim.latencyMs.set('b', 50);
    sim.run(1_000);
    const probes: number[] = [];
    for (let window = 0; window < 20; window++) probes.push(sim.run(10_000).get('b')!);
    const total = probes.reduce((x, y) => x + y, 0);
    // Probed a few times in 200 s (about every decay * ln(99) ~ 45 s), each time a handful of RPCs.
    assert.ok(probes.filter((n) => n > 0).length >= 3, probes.join(','));
    assert.ok(total < 40, probes.join(','));
  });

  it('gives a recovered endpoint its share back within a bounded time', () => {
    const sim = new Simulation(['a', 'b', 'c']);
    sim.run(2_000);
    sim.latencyMs.set('b', 50);
    sim.run(30_000);
    sim.latencyMs.set('b', 1);
    // Worst case: just probed before it recovered, so ~45 s until the next probe; then it rejoins at once.
    const recoveredAt = sim.now;
    let window = sim.run(1_000);
    while (share(window, 'b') < 0.25 && sim.now - recoveredAt < 60_000) window = sim.run(1_000);
    assert.ok(share(window, 'b') >= 0.25, `after ${sim.now - recoveredAt} ms: ${JSON.stringify([...window])}`);
    assert.ok(share(sim.run(5_000), 'b') > 0.3);
  });

  it('recovers faster with a shorter decay', () => {
    const sim = new Simulation(['a', 'b', 'c'], { decayMs: 1_000 });
    sim.run(2_000);
    sim.latencyMs.set('b', 50);
    sim.run(10_000);
    sim.latencyMs.set('b', 1);
    sim.run(6_000);
    assert.ok(share(sim.run(2_000), 'b') > 0.3);
  });

  it('does not send a burst to a long-idle slow endpoint: its probe share is bounded by in-flight requests', () => {
    const { env, clock } = testEnvironment(3);
    const p = new PeakEwmaPolicy<TestEndpoint>(env);
    const set = ['a', 'b', 'c'].map((k) => endpoint(k));
    const [a, b, c] = set as [TestEndpoint, TestEndpoint, TestEndpoint];
    p.setEndpoints(set);
    for (let t = 1; t <= 1000; t++) {
      clock.now = t;
      p.onRpcEnd(a, 1);
      p.onRpcEnd(c, 1);
    }
    p.onRpcEnd(b, 50);
    clock.now += 3_600_000; // an hour without a word from b, while a and c are current
    p.onRpcEnd(a, 1);
    p.onRpcEnd(c, 1);
    // 300 RPCs arrive at once: none finishes before the next is picked.
    const counts = tally(() => {
      const picked = p.pick({})!;
      picked.activeRequests++;
      return picked;
    }, 300);
    // Decaying toward zero would give b every pair it is in (~2/3); here it is capped near twice a fair share.
    assert.ok(counts.get('b')! > 0 && share(counts, 'b') < 0.55, JSON.stringify([...counts]));
  });

  it('tries a newly added endpoint at once, in a fleet much faster than any fixed prior', () => {
    const sim = new Simulation(['a', 'b']);
    sim.run(3_000);
    const grown = [...sim.endpoints, endpoint('c')];
    sim.endpoints.push(grown[2]!);
    sim.latencyMs.set('c', 1);
    sim.policy.setEndpoints(grown);
    assert.ok(share(sim.run(1_000), 'c') > 0.25);
  });

  it('keeps estimates across setEndpoints for endpoints that stay', () => {
    const sim = new Simulation(['a', 'b', 'c']);
    sim.run(2_000);
    sim.latencyMs.set('b', 50);
    sim.run(1_000);
    sim.policy.setEndpoints([...sim.endpoints].reverse());
    assert.ok(share(sim.run(2_000), 'b') < 0.01);
  });

  it('ignores nonsense latencies and endpoints it does not know, without throwing', () => {
    const { env } = testEnvironment();
    const p = new PeakEwmaPolicy<TestEndpoint>(env, { decayMs: -5 });
    const [a, b] = [endpoint('a'), endpoint('b')];
    p.setEndpoints([a, b]);
    for (const latency of [Number.NaN, -1, Infinity]) p.onRpcEnd(a, latency);
    p.onRpcEnd(endpoint('gone'), 10);
    const counts = tally(() => p.pick({}), 1000);
    assert.ok(counts.get('a')! > 400 && counts.get('b')! > 400, JSON.stringify([...counts]));
  });

  it('still balances in-flight requests when every latency measures 0', () => {
    const { env } = testEnvironment(4);
    const p = new PeakEwmaPolicy<TestEndpoint>(env);
    const set = ['a', 'b', 'c', 'd'].map((k) => endpoint(k));
    p.setEndpoints(set);
    for (const e of set) p.onRpcEnd(e, 0);
    for (let i = 0; i < 400; i++) p.pick({})!.activeRequests++;
    const active = set.map((e) => e.activeRequests);
    assert.ok(Math.max(...active) - Math.min(...active) <= 3, active.join(','));
  });
});
