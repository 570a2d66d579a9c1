/**
 * The connection's stream table against a Map as its model, under fast-check: any sequence of
 * adds, replacements and deletes (ids rising by two as on a connection, and arbitrary ids that
 * collide in the slots) leaves the same entries, size and lookups, including after it grows.
 * A deleted stream is no longer referenced by the table, so the collector can take it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { StreamTable } from '../../src/http2/stream-table.ts';
import { FUZZ_SEED, fuzzRuns } from '../helpers/fuzz.ts';

type Op = { readonly kind: 'set' | 'delete' | 'get'; readonly id: number };

const streamId = fc.oneof(
  fc.integer({ min: 0, max: 40 }).map((n) => 2 * n + 1),
  fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  fc.integer({ min: 0, max: 8 }).map((n) => 1 + 64 * n),
);
const op: fc.Arbitrary<Op> = fc.record({ kind: fc.constantFrom('set', 'set', 'delete', 'get'), id: streamId });

describe('StreamTable', () => {
  it('holds what a Map would, whatever the adds and deletes', () => {
    fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const table = new StreamTable<{ id: number; n: number }>();
      const model = new Map<number, { id: number; n: number }>();
      ops.forEach(({ kind, id }, n) => {
        if (kind === 'set') {
          const stream = { id, n };
          table.set(id, stream);
          model.set(id, stream);
        } else if (kind === 'delete') {
          assert.equal(table.delete(id), model.delete(id));
        }
        assert.equal(table.get(id), model.get(id));
        assert.equal(table.size, model.size);
      });
      for (const [id, stream] of model) assert.equal(table.get(id), stream);
      const byId = (a: { id: number }, b: { id: number }) => a.id - b.id;
      assert.deepEqual(table.values().sort(byId), [...model.values()].sort(byId));
    }), { seed: FUZZ_SEED, numRuns: fuzzRuns(500) });
  });

  it('finds every stream of a connection that opens 10,000 and keeps 100 open', () => {
    const table = new StreamTable<number>();
    for (let id = 1; id < 20_000; id += 2) {
      table.set(id, id);
      if (id > 200) assert.equal(table.delete(id - 200), true);
      assert.equal(table.get(id), id);
    }
    assert.equal(table.size, 100);
    assert.equal(table.get(19_999 - 200), undefined);
  });

  it('lets go of a deleted stream', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const table = new StreamTable<object>();
    let stream: object | undefined = { id: 3 };
    const ref = new WeakRef(stream);
    table.set(1, {});
    table.set(3, stream);
    table.delete(3);
    stream = undefined;
    // A WeakRef's target stays alive until the current job ends.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    assert.equal(ref.deref(), undefined);
    assert.equal(table.size, 1);
  });
});
