/** The dashboard's 15-minute history, on a fake clock: steps, rates, p99, attempts, and the ring. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BalanceWindow } from '../../src/metrics/balance-window.ts';
import { mulberry32 } from '../helpers/seeded-random.ts';

const START = 1_700_000_000_000; // a multiple of 5 s

function windowAt(clock: { now: number }) {
  return new BalanceWindow({ now: () => clock.now, random: mulberry32(7) });
}

test('one point per 5 s step since the start: RPC/s, errors/s, p99 and attempts per endpoint', () => {
  const clock = { now: START };
  const window = windowAt(clock);
  assert.equal(window.historyStepSeconds, 5);
  for (let i = 0; i < 100; i++) {
    window.rpcEnded('echo', i < 10 ? 14 : 0, i + 1); // ten UNAVAILABLE, latencies 1..100 ms
    window.attemptEnded('echo', i % 4 === 0 ? 'a' : 'b');
  }
  clock.now += 5_000;
  window.rpcEnded('echo', 0, 7);
  clock.now += 2_000;
  const points = window.history('echo');
  assert.equal(points.length, 2);
  assert.deepEqual(points[0], { time: START, rps: 20, errorsPerSecond: 2, p99Ms: 99, attempts: { a: 25, b: 75 } });
  // The step being filled divides by its elapsed 2 s.
  assert.deepEqual(points[1], { time: START + 5_000, rps: 0.5, errorsPerSecond: 0, p99Ms: 7, attempts: {} });
  assert.deepEqual(window.history('other').map((point) => point.rps), [0, 0]);
});

test('steps without traffic are zeros; after 15 minutes the oldest steps fall off', () => {
  const clock = { now: START };
  const window = windowAt(clock);
  window.rpcEnded('echo', 0, 1);
  window.attemptEnded('echo', 'a');
  clock.now += 60_000;
  const minute = window.history('echo');
  assert.equal(minute.length, 13);
  assert.equal(minute[0]!.rps, 0.2);
  assert.ok(minute.slice(1).every((point) => point.rps === 0 && point.p99Ms === undefined));

  clock.now += 15 * 60_000;
  window.rpcEnded('echo', 0, 3);
  const later = window.history('echo');
  assert.equal(later.length, 180, '15 minutes of 5 s steps');
  assert.equal(later[0]!.time, later.at(-1)!.time - 179 * 5_000);
  assert.ok(later.slice(0, -1).every((point) => point.rps === 0), 'the first step has fallen off the ring');
  assert.equal(later.at(-1)!.p99Ms, 3);
});

test('a finished step keeps its p99 after its samples are let go', () => {
  const clock = { now: START };
  const window = windowAt(clock);
  for (let i = 1; i <= 5_000; i++) window.rpcEnded('echo', 0, i % 1000);
  clock.now += 5_000;
  window.rpcEnded('echo', 0, 1); // moves on to the next step, which reduces the first
  const [first] = window.history('echo');
  assert.ok(first!.p99Ms! >= 950 && first!.p99Ms! <= 999, `p99 ${first!.p99Ms} from a bounded sample`);
  assert.equal(first!.rps, 1_000);
});
