// The per-RPC metric cells must expose exactly what prom-client's own counters and histograms would.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { CellCounter, CellHistogram } from '../../src/metrics/cells.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1];

describe('metric cells', () => {
  it('a counter exposes what prom-client\'s Counter does for the same additions', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const cells = new CellCounter({ name: 'rpcs_total', help: 'RPCs.', labelNames: ['route', 'code'], registers: [ours] });
    const reference = new Counter({ name: 'rpcs_total', help: 'RPCs.', labelNames: ['route', 'code'], registers: [theirs] });
    const additions: [string, string, number][] = [['a', 'OK', 1], ['a', 'OK', 3], ['b', 'UNAVAILABLE', 1], ['a "quoted"\\', 'OK', 2.5]];
    for (const [route, code, value] of additions) {
      cells.cell({ route, code }).value += value;
      reference.inc({ route, code }, value);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('a histogram exposes what prom-client\'s Histogram does, values on a bound and past the last included', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const cells = new CellHistogram({ name: 'rpc_seconds', help: 'Durations.', labelNames: ['route'], buckets: BUCKETS, registers: [ours] });
    const reference = new Histogram({ name: 'rpc_seconds', help: 'Durations.', labelNames: ['route'], buckets: BUCKETS, registers: [theirs] });
    const observations: [string, number][] = [['a', 0], ['a', 0.001], ['a', 0.0011], ['a', 0.5], ['a', 1], ['a', 7], ['b', 0.02]];
    for (const [route, value] of observations) {
      cells.cell({ route }).observe(value);
      reference.observe({ route }, value);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('gives the same series for the same labels in any order, and drops the series a removal matches', async () => {
    const registry = new Registry();
    const cells = new CellCounter({ name: 'attempts_total', help: 'Attempts.', labelNames: ['cluster', 'endpoint'], registers: [registry] });
    const first = cells.cell({ cluster: 'c', endpoint: 'e1' });
    assert.equal(cells.cell({ endpoint: 'e1', cluster: 'c' }), first);
    first.value++;
    cells.cell({ cluster: 'c', endpoint: 'e2' }).value++;
    cells.remove({ endpoint: 'e1' });
    const text = await registry.metrics();
    assert.doesNotMatch(text, /e1/);
    assert.match(text, /attempts_total\{cluster="c",endpoint="e2"\} 1/);
  });

  it('refuses a label set that does not match its label names', () => {
    const cells = new CellCounter({ name: 'x_total', help: 'X.', labelNames: ['a', 'b'], registers: [] });
    assert.throws(() => cells.cell({ a: '1' }), /expected a, b/);
    assert.throws(() => cells.cell({ a: '1', c: '2' }), /label b missing/);
  });
});
