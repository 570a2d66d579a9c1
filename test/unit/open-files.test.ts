// The descriptor gate with an injected count and clock: exact admissions, and
// how often it lists /proc/self/fd.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultReserve, descriptorGate, openFileCount, openFileLimit } from '../../src/security/open-files.ts';

function fakeProcess(open: number) {
  const state = { open, now: 0, counts: 0 };
  return { state, options: { count: () => { state.counts++; return state.open; }, now: () => state.now } };
}

const admitted = (gate: { admit(): boolean }, tries: number) => Array.from({ length: tries }, () => gate.admit()).filter(Boolean).length;

describe('descriptorGate', () => {
  it('admits until the descriptors in use come within the reserve of the limit', () => {
    const { options } = fakeProcess(850);
    const gate = descriptorGate({ ...options, limit: 1_000, reserve: 100 });
    assert.equal(admitted(gate, 200), 50, '850 open, 900 allowed: 50 more');
  });

  it('sees descriptors freed at the next count: within 100 ms near the limit', () => {
    const { state, options } = fakeProcess(850);
    const gate = descriptorGate({ ...options, limit: 1_000, reserve: 100 });
    admitted(gate, 100);
    state.open = 700; // the admitted connections closed, and some others
    state.now = 50;
    assert.equal(gate.admit(), false, 'not recounted yet');
    state.now = 151;
    assert.equal(admitted(gate, 500), 200);
  });

  it('lists /proc/self/fd at most once a second while far from the limit, however many connections arrive', () => {
    const { state, options } = fakeProcess(100);
    const gate = descriptorGate({ ...options, limit: 10_000 });
    for (let ms = 0; ms < 5_000; ms++) {
      state.now = ms;
      gate.admit();
      state.open = 100; // each connection closes again at once
    }
    assert.ok(state.counts <= 6, `${state.counts} counts in 5 s`);
  });

  it('admits everything when the count is unknown (no /proc)', () => {
    const gate = descriptorGate({ limit: 100, count: () => undefined });
    assert.equal(admitted(gate, 500), 500);
  });

  it('keeps a tenth of the limit, and at least 64', () => {
    assert.deepEqual([256, 1_024, 65_536].map(defaultReserve), [64, 103, 6_554]);
  });

  it('reads this process\'s real limit and count', () => {
    const limit = openFileLimit();
    assert.ok(limit && limit.soft > 0 && limit.soft <= limit.hard, JSON.stringify(limit));
    assert.equal(limit.soft, limit.hard, 'Node raised the soft limit to the hard one at start');
    const count = openFileCount();
    assert.ok(count !== undefined && count >= 3 && count < limit.soft, String(count));
  });
});
