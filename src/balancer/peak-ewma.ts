/**
 * peak_ewma: Finagle's / Linkerd's latency-aware balancer. Each endpoint carries an estimate of its round-trip
 * time; an RPC goes to the cheaper of two random endpoints, cost = estimate * (activeRequests + 1).
 *
 * "Peak": a response slower than the estimate replaces it at once, so an endpoint that turns slow loses its
 * traffic after its first slow response, not after an average catches up. A faster response only pulls the
 * estimate down gradually (time-weighted EWMA, and at least MIN_PULL_PER_SAMPLE of the way per response), so one
 * lucky fast response cannot bring a slow endpoint back, while a busy fast endpoint sheds a one-off spike within
 * tens of responses.
 */

import type { BalancedEndpoint, LoadBalancingPolicy, PickContext, PolicyDefinition, PolicyEnvironment } from './policy.ts';
import { systemEnvironment } from './policy.ts';
import { WeightTable } from './random.ts';

export interface PeakEwmaOptions {
  /** Time constant of the average, ms: after this long, older samples weigh 1/e. Default 10 000 (Linkerd's). */
  readonly decayMs?: number | undefined;
}

export const DEFAULT_EWMA_DECAY_MS = 10_000;

/**
 * What an endpoint we know nothing current about is assumed to cost, as a fraction of the typical RTT.
 * Below 1 so that it is actually tried: an idle peer costs exactly its RTT, and an assumption of "typical"
 * would lose such comparisons to noise or ties. Not far below 1 so that the (activeRequests + 1) factor still
 * stops it after about twice a fair share of in-flight RPCs while its first response is awaited.
 */
const PROBE_FRACTION = 0.5;
/** Any positive prior gives the same choices (all endpoints share it); it only has to be positive, see MIN_SAMPLE_MS. */
const PRIOR_RTT_MS = 30;
/** Floor for samples: an estimate of 0 would make cost 0 whatever activeRequests, turning P2C into random. */
const MIN_SAMPLE_MS = 0.001;
/**
 * Each response faster than the estimate pulls it at least this fraction of the way down, however little time
 * passed since the previous one. The time-weighted pull alone (elapsed / decayMs) is about 0.0001 per response at
 * 700 RPC/s per endpoint, so one latency spike (a proxy GC or scheduling pause that delays every endpoint's
 * responses alike) would make a fast endpoint's estimate that spike for seconds, as slow as a slow endpoint.
 */
const MIN_PULL_PER_SAMPLE = 0.05;
/** A failed RPC counts as this many times the typical latency, however fast it failed. */
const FAILURE_PENALTY_FACTOR = 10;
/**
 * Each latency pulls typical at least this fraction of the way toward it, however little time passed. Time
 * alone moves it ~0.00003 per sample at 3,000 RPC/s, so it stayed near the first samples, which include
 * connection set-up (6.7 ms measured against 0.3 ms RPCs), and with it the floor stale estimates decay to.
 * 1% follows the fleet within a few hundred responses.
 */
const TYPICAL_MIN_PULL_PER_SAMPLE = 0.01;
/**
 * Typical learns a slower sample as if it were this many times typical, so that the rare spike (or a slow
 * endpoint's probe) cannot double it through the per-sample pull, and with it the floor and what counts as slow.
 */
const TYPICAL_CLIP = 4;
/**
 * Picks (made for any endpoint) over which a stale estimate's excess over the floor shrinks by a factor e,
 * before backoff. Through a busy process single responses spike to 100x the median (a GC pause, the CPU
 * taken away); with this, such a spike costs its endpoint about ln(200) = 5 picks of traffic. Simulated
 * (balancer-peak-ewma.test.ts's noisy latencies, 20 runs of 3,000 sequential RPCs to identical endpoints):
 * max/min 1.08 at worst, against 1.12 with 2 picks, 1.17 with 4, and 19.3 with the time decay alone.
 */
const PICK_DECAY = 1;
/**
 * A response slower than this many times typical is slow, and each slow response in a row doubles the
 * picks its endpoint's estimate takes to decay: an endpoint that stays slow is probed after 1, 2, 4, 8, ...
 * picks' worth of decay, a few dozen probes over a million RPCs, while identical endpoints, whose slow
 * responses rarely come two in a row, lose almost nothing. With 2, an endpoint 5x slower than the rest gets
 * 1-3% of the traffic (simulated, 1 to 32 RPCs in flight); with 3 it got 7-9%.
 */
const SLOW_FACTOR = 2;
/** Doublings at most: 2^16 picks, at 1,000 RPC/s about as long as the time decay takes to probe anyway. */
const MAX_BACKOFF = 16;

interface RttEstimate {
  rttMs: number;
  updatedAt: number;
  /** The policy's pick count when rttMs was last set. */
  updatedAtPick: number;
  /** Slow responses in a row, up to MAX_BACKOFF: the estimate decays over PICK_DECAY * 2^slowStreak picks. */
  slowStreak: number;
  /** False until the endpoint's first response, which then replaces the assumption outright (rttMs is unused until then). */
  observed: boolean;
}

/**
 * Peak EWMA with power of two choices. Candidates are drawn with probability proportional to weight; the cost
 * itself ignores weight, so weight says how often an endpoint is considered and latency decides.
 *
 * Estimates are kept per endpoint key and survive setEndpoints for endpoints that stay. Besides them the policy
 * keeps a cluster-wide average of all latencies (time-weighted, and pulled 1% of the way by each), the typical
 * RTT, and treats what it does not
 * know currently as PROBE_FRACTION (half) of typical: a deliberate answer to two problems.
 *
 * - Staleness. An endpoint that was slow stops getting traffic, so its estimate stops being updated and would
 *   stay slow forever: P2C alone only probes it when its rival has estimate * (active + 1) above it, which for
 *   a 50x slower endpoint means 50 RPCs in flight on a healthy one, i.e. never at moderate load. So an estimate
 *   decays, from its last response on, toward half of typical: over decayMs of time, and also over the picks
 *   made meanwhile (PICK_DECAY of them, doubled for every slow response in a row). The time decay bounds how
 *   long a recovered endpoint waits for a probe (decayMs * ln(99), ~45 s, for a 50 ms endpoint among 1 ms
 *   ones); the pick decay is what makes a single slow response cheap. Latencies through a busy process have
 *   spikes of 100x the median (a GC pause, the CPU taken away), and peak makes any spike the estimate: with
 *   the time decay alone, the endpoint that had one lost its traffic for tens of seconds, so identical
 *   backends under sequential RPCs ended up served 28 / 1,410 / 1,562. Counted in picks, a spike costs a few
 *   RPCs; an endpoint that answers its probes slowly again and again is probed after 1, 2, 4, 8, ... picks'
 *   worth of decay, so a slow backend gets a handful of RPCs per doubling, well under 1% of any run. Decaying
 *   with the pick count keeps this the same at any request rate, which no time constant does.
 *   Finagle and Linkerd decay toward zero instead, which after a long idle makes the endpoint cost ~0 whatever
 *   its activeRequests, so it wins every comparison until its first response returns: a burst onto an endpoint
 *   last seen slow. Decaying toward typical itself would never probe at low load: an idle peer costs exactly
 *   typical, and the stale estimate only approaches it from above.
 * - Newcomers (and every endpoint before its first response) are assumed half of typical, so a new endpoint
 *   is tried at once, in a fleet of any speed, with a bounded number of RPCs before its first answer. A fixed
 *   prior such as Linkerd's 30 ms would starve it for ~35 s in a 1 ms fleet, and 0 would send it everything
 *   until it answers. Its first response then replaces the assumption.
 */
export const peakEwma = {
  name: 'peak_ewma',
  // Time constant of the latency average.
  options: { ewma_decay: { kind: 'duration', min: 1, max: 2 ** 31 - 1, default: DEFAULT_EWMA_DECAY_MS } },
  xds: { exact: undefined, forGrpcClients: 'ROUND_ROBIN' },
  create: (env, options) => new PeakEwmaPolicy(env, { decayMs: options.ewma_decay }),
} satisfies PolicyDefinition<'peak_ewma'>;

export class PeakEwmaPolicy<E extends BalancedEndpoint = BalancedEndpoint> implements LoadBalancingPolicy<E> {
  readonly #env: PolicyEnvironment;
  readonly #decayMs: number;
  #endpoints: readonly E[] = [];
  /** #estimates[i] belongs to #endpoints[i], for the hot path; #byKey finds them for onRpcEnd. */
  #estimates: RttEstimate[] = [];
  #byKey = new Map<string, RttEstimate>();
  readonly #table = new WeightTable();
  readonly #typical: RttEstimate;
  /** Samples typical has learnt. */
  #typicalSamples = 0;
  /** Picks made so far: the clock of the pick decay. */
  #picks = 0;

  constructor(env: PolicyEnvironment = systemEnvironment, options: PeakEwmaOptions = {}) {
    this.#env = env;
    const decay = options.decayMs;
    this.#decayMs = decay !== undefined && decay > 0 && decay < Infinity ? decay : DEFAULT_EWMA_DECAY_MS;
    this.#typical = { rttMs: PRIOR_RTT_MS, updatedAt: env.now(), updatedAtPick: 0, slowStreak: 0, observed: false };
  }

  setEndpoints(endpoints: readonly E[]): void {
    const now = this.#env.now();
    const byKey = new Map<string, RttEstimate>();
    const estimates: RttEstimate[] = [];
    for (const endpoint of endpoints) {
      const estimate = byKey.get(endpoint.key) ??
        this.#byKey.get(endpoint.key) ?? { rttMs: 0, updatedAt: now, updatedAtPick: this.#picks, slowStreak: 0, observed: false };
      byKey.set(endpoint.key, estimate);
      estimates.push(estimate);
    }
    this.#endpoints = endpoints.slice();
    this.#estimates = estimates;
    this.#byKey = byKey;
    this.#table.rebuild(this.#endpoints);
  }

  pick(_context: PickContext): E | undefined {
    const endpoints = this.#endpoints;
    if (endpoints.length <= 1) return endpoints[0];
    const now = this.#env.now();
    this.#picks++;
    const i = this.#table.draw(this.#env.random());
    const j = this.#table.drawOther(this.#env.random(), i);
    const first = endpoints[i]!;
    const second = endpoints[j]!;
    const firstCost = this.#current(this.#estimates[i]!, now) * (first.activeRequests + 1);
    const secondCost = this.#current(this.#estimates[j]!, now) * (second.activeRequests + 1);
    return secondCost < firstCost ? second : first;
  }

  onRpcEnd(endpoint: E, latencyMs: number, failed = false): void {
    if (!(latencyMs >= 0 && latencyMs < Infinity)) return;
    const observed = latencyMs > MIN_SAMPLE_MS ? latencyMs : MIN_SAMPLE_MS;
    // A fast failure must not look like a fast endpoint; typical still learns only real latencies.
    const sample = failed ? Math.max(observed, this.#typical.rttMs * FAILURE_PENALTY_FACTOR) : observed;
    const now = this.#env.now();
    const estimate = this.#byKey.get(endpoint.key);
    // An RPC that outlived its endpoint's membership has no estimate left to update; it still informs typical.
    if (estimate !== undefined) {
      const current = this.#current(estimate, now);
      estimate.rttMs = !estimate.observed || sample > current ? sample : this.#blend(current, sample, now - estimate.updatedAt, MIN_PULL_PER_SAMPLE);
      estimate.updatedAt = now;
      estimate.updatedAtPick = this.#picks;
      estimate.observed = true;
      estimate.slowStreak = sample > this.#typical.rttMs * SLOW_FACTOR ? Math.min(estimate.slowStreak + 1, MAX_BACKOFF) : 0;
    }
    const typical = this.#typical;
    if (failed) return;
    // A spike (or a slow endpoint's answer) moves it like a sample TYPICAL_CLIP times typical would, no more.
    const bounded = Math.min(sample, typical.rttMs * TYPICAL_CLIP);
    // The first hundred samples are averaged plainly, so the first ones (connection set-up) fade at once.
    this.#typicalSamples++;
    const pull = Math.max(TYPICAL_MIN_PULL_PER_SAMPLE, 1 / this.#typicalSamples);
    typical.rttMs = typical.observed ? this.#blend(typical.rttMs, bounded, now - typical.updatedAt, pull) : sample;
    typical.updatedAt = now;
    typical.observed = true;
  }

  /**
   * The estimate as of `now`: unknown is PROBE_FRACTION of typical, and above that it decays toward it, by the
   * time and by the picks since its last response (see the class comment).
   */
  #current(estimate: RttEstimate, now: number): number {
    const floor = this.#typical.rttMs * PROBE_FRACTION;
    if (!estimate.observed) return floor;
    if (estimate.rttMs <= floor) return estimate.rttMs;
    const age = Math.max(0, now - estimate.updatedAt) / this.#decayMs;
    const missed = (this.#picks - estimate.updatedAtPick) / (PICK_DECAY * 2 ** estimate.slowStreak);
    if (age + missed <= 0) return estimate.rttMs;
    return floor + (estimate.rttMs - floor) * Math.exp(-(age + missed));
  }

  /**
   * Time-weighted EWMA: the old value keeps weight e^(-elapsed/decay), so the average forgets per ms, not per
   * sample; with minPull, each sample also moves it at least that fraction of the way.
   */
  #blend(old: number, sample: number, elapsedMs: number, minPull = 0): number {
    const w = Math.min(elapsedMs > 0 ? Math.exp(-elapsedMs / this.#decayMs) : 1, 1 - minPull);
    if (w >= 1) return old;
    return old * w + sample * (1 - w);
  }
}
