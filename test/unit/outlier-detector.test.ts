import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { outlierDetection } from '../../src/config/resilience-schema.ts';
import { answered, failed, type Outcome } from '../../src/grpc/outcome.ts';
import { OutlierDetector } from '../../src/health/outlier-detector.ts';

const OK = answered(0);
const UNAVAILABLE = answered(14);
const INTERNAL = answered(13);
const NOT_FOUND = answered(5);
const CONNECT_FAILURE = failed('upstream_connect_failure');
const RESET = failed('upstream_reset');
const ABANDONED = failed('abandoned');

/** A detector over endpoints a..(count), with a clock the test moves. */
function setup(config: Record<string, unknown> = {}, count = 4) {
  const clock = { now: 0 };
  const detector = new OutlierDetector(outlierDetection.parse(config), () => clock.now);
  const keys = Array.from({ length: count }, (_, i) => String.fromCharCode(97 + i));
  detector.setEndpoints(keys);
  const repeat = (key: string, outcome: Outcome, times: number) => {
    for (let i = 0; i < times; i++) detector.record(key, outcome);
  };
  return { clock, detector, keys, repeat };
}

describe('outlier detection: consecutive errors', () => {
  it('ejects after consecutive_gateway_errors of UNAVAILABLE, connect failures and resets mixed', () => {
    const { detector } = setup({ consecutive_gateway_errors: 5 });
    for (const outcome of [UNAVAILABLE, CONNECT_FAILURE, RESET, UNAVAILABLE]) {
      assert.equal(detector.record('a', outcome), undefined);
    }
    assert.equal(detector.isEjected('a'), false);
    assert.equal(detector.record('a', RESET), 'consecutive_gateway_errors');
    assert.equal(detector.isEjected('a'), true);
    assert.equal(detector.ejectedCount, 1);
  });

  it('counts grpc-status 14 that came in trailers after HTTP 200: the outcome is the status, wherever it was read', () => {
    // A trailers status is an answer: a backend answering 200 + grpc-status 14 is failing.
    const { detector, repeat } = setup({ consecutive_gateway_errors: 3 });
    repeat('b', answered(14), 3);
    assert.equal(detector.isEjected('b'), true);
  });

  it('any success resets the count: OK, and application statuses such as NOT_FOUND', () => {
    const { detector, repeat } = setup({ consecutive_gateway_errors: 3 });
    repeat('a', UNAVAILABLE, 2);
    detector.record('a', OK);
    repeat('a', UNAVAILABLE, 2);
    detector.record('a', NOT_FOUND);
    repeat('a', UNAVAILABLE, 2);
    assert.equal(detector.isEjected('a'), false);
    assert.equal(detector.endpointSnapshot('a')!.consecutiveGatewayErrors, 2);
  });

  it('ignores abandoned attempts (deadline, cancellation): they neither count nor reset', () => {
    const { detector, repeat } = setup({ consecutive_gateway_errors: 3 });
    repeat('a', UNAVAILABLE, 2);
    repeat('a', ABANDONED, 50);
    assert.equal(detector.endpointSnapshot('a')!.intervalRequests, 2);
    detector.record('a', UNAVAILABLE);
    assert.equal(detector.isEjected('a'), true);
  });

  it('consecutive_errors counts the statuses in error_codes; a non-gateway error resets the gateway count', () => {
    const { detector, repeat } = setup({ consecutive_gateway_errors: 3, consecutive_errors: 4, error_codes: ['INTERNAL', 14] });
    repeat('a', UNAVAILABLE, 2);
    detector.record('a', INTERNAL);
    assert.equal(detector.endpointSnapshot('a')!.consecutiveGatewayErrors, 0);
    assert.equal(detector.endpointSnapshot('a')!.consecutiveErrors, 3);
    assert.equal(detector.record('a', INTERNAL), 'consecutive_errors');

    // Without error_codes, INTERNAL is an answer, not an error.
    const plain = setup({ consecutive_gateway_errors: 3 });
    plain.repeat('a', UNAVAILABLE, 2);
    plain.detector.record('a', INTERNAL);
    plain.repeat('a', UNAVAILABLE, 2);
    assert.equal(plain.detector.isEjected('a'), false);
  });

  it('a threshold of 0 turns the rule off', () => {
    const { detector, repeat } = setup({ consecutive_gateway_errors: 0 });
    repeat('a', UNAVAILABLE, 1000);
    assert.equal(detector.isEjected('a'), false);
  });
});

describe('outlier detection: max_ejection_percent', () => {
  it('caps ejections: with 50% of 4 endpoints, two are ejected and the third stays', () => {
    const { detector, repeat } = setup({ consecutive_gateway_errors: 2, max_ejection_percent: 50 }, 4);
    for (const key of ['a', 'b', 'c']) repeat(key, UNAVAILABLE, 2);
    assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => detector.isEjected(k)), [true, true, false, false]);
    // The refused attempt reset the count: another full run is needed to try again.
    assert.equal(detector.endpointSnapshot('c')!.consecutiveGatewayErrors, 0);
  });

  it('rounds strictly: 50% of 3 allows one ejection, and a lone endpoint is never ejected', () => {
    const three = setup({ consecutive_gateway_errors: 1, max_ejection_percent: 50 }, 3);
    for (const key of three.keys) three.detector.record(key, UNAVAILABLE);
    assert.equal(three.detector.ejectedCount, 1);

    const one = setup({ consecutive_gateway_errors: 1 }, 1);
    one.repeat('a', UNAVAILABLE, 10);
    assert.equal(one.detector.isEjected('a'), false);

    const all = setup({ consecutive_gateway_errors: 1, max_ejection_percent: 100 }, 3);
    for (const key of all.keys) all.detector.record(key, UNAVAILABLE);
    assert.equal(all.detector.ejectedCount, 3);
  });

  it('forgets removed endpoints, ejection included, so the share is of the endpoints that exist', () => {
    const { detector, repeat } = setup({ consecutive_gateway_errors: 1, max_ejection_percent: 50 }, 2);
    repeat('a', UNAVAILABLE, 1);
    assert.equal(detector.ejectedCount, 1);
    detector.setEndpoints(['b', 'c', 'd']);
    assert.equal(detector.ejectedCount, 0);
    assert.equal(detector.endpointSnapshot('a'), undefined);
    detector.record('a', UNAVAILABLE); // an in-flight RPC of the removed endpoint: ignored
    assert.equal(detector.snapshot().length, 3);
  });
});

describe('outlier detection: ejection time', () => {
  it('the endpoint comes back when its ejection time has passed, with clean counters', () => {
    const { clock, detector, repeat } = setup({ consecutive_gateway_errors: 3, base_ejection_time: '1s' });
    repeat('a', UNAVAILABLE, 3);
    assert.equal(detector.nextChangeAt(), 1_000);
    clock.now = 999;
    assert.deepEqual(detector.unejectExpired(), []);
    clock.now = 1_000;
    assert.deepEqual(detector.evaluate().returned, ['a']);
    assert.equal(detector.isEjected('a'), false);
    assert.equal(detector.nextChangeAt(), undefined);
    repeat('a', UNAVAILABLE, 2);
    assert.equal(detector.isEjected('a'), false, 'needs a full run of errors again');
  });

  it('grows with each ejection (base × count), capped at max_ejection_time, and decays while the endpoint behaves', () => {
    const { clock, detector, repeat } = setup({ consecutive_gateway_errors: 1, base_ejection_time: '1s', max_ejection_time: '3s', interval: '10s' });
    const durations: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = clock.now;
      repeat('a', UNAVAILABLE, 1);
      durations.push(detector.nextChangeAt()! - start);
      clock.now = detector.nextChangeAt()!;
      assert.deepEqual(detector.unejectExpired(), ['a']);
    }
    assert.deepEqual(durations, [1_000, 2_000, 3_000, 3_000, 3_000]);
    const count = detector.endpointSnapshot('a')!.ejectionCount;
    assert.ok(count >= 3);
    // Each full interval spent un-ejected takes one off the multiplier.
    for (let i = 0; i < count; i++) {
      clock.now += 10_000;
      detector.evaluate();
    }
    assert.equal(detector.endpointSnapshot('a')!.ejectionCount, 0);
    assert.equal(detector.endpointSnapshot('a')!.totalEjections, 5);
    const start = clock.now;
    repeat('a', UNAVAILABLE, 1);
    assert.equal(detector.nextChangeAt()! - start, 1_000);
  });
});

describe('outlier detection: success rate', () => {
  const config = { consecutive_gateway_errors: 0, success_rate: { minimum_hosts: 5, request_volume: 100, stdev_factor: 1.9 } };

  /** One interval of traffic: `rates[i]` is endpoint i's success share over `volume` RPCs. */
  function interval(detector: OutlierDetector, keys: readonly string[], rates: readonly number[], volume = 200) {
    keys.forEach((key, i) => {
      const successes = Math.round(rates[i]! * volume);
      for (let n = 0; n < volume; n++) detector.record(key, n < successes ? OK : UNAVAILABLE);
    });
    return detector.evaluate();
  }

  it('ejects the endpoint far below the mean and no other', () => {
    const { detector, keys } = setup(config, 10);
    // Nine healthy endpoints with the odd failure, one failing a fifth of its calls.
    const rates = [0.995, 1, 0.99, 1, 0.985, 1, 0.995, 0.99, 1, 0.8];
    const { ejected } = interval(detector, keys, rates);
    assert.deepEqual(ejected, ['j']);
    assert.equal(detector.endpointSnapshot('j')!.lastEjectionReason, 'success_rate');
    assert.equal(detector.endpointSnapshot('a')!.successRate, 99.5);
  });

  it('compares nothing below minimum_hosts endpoints with request_volume RPCs', () => {
    const { detector, keys } = setup(config, 10);
    const rates = [1, 1, 1, 1, 0.2, 1, 1, 1, 1, 1];
    // Only four endpoints reach the volume.
    keys.forEach((key, i) => {
      const volume = i < 4 ? 200 : 50;
      for (let n = 0; n < volume; n++) detector.record(key, n < rates[i]! * volume ? OK : UNAVAILABLE);
    });
    assert.deepEqual(detector.evaluate().ejected, []);
  });

  it('starts a new interval after each evaluation', () => {
    const { detector, keys } = setup(config, 5);
    interval(detector, keys, [1, 1, 1, 1, 1]);
    assert.equal(detector.endpointSnapshot('a')!.intervalRequests, 0);
    // An empty interval has no rate.
    detector.evaluate();
    assert.equal(detector.endpointSnapshot('a')!.successRate, undefined);
  });

  it('is off without success_rate config, whatever the rates', () => {
    const { detector, keys } = setup({ consecutive_gateway_errors: 0 }, 5);
    assert.deepEqual(interval(detector, keys, [1, 1, 1, 1, 0]).ejected, []);
  });
});
