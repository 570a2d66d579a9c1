import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HoldQueue, type Holding } from '../../src/proxy/response-hold.ts';

function holder(name: string, released: string[]): Holding {
  return { holding: false, releaseHeld: () => released.push(name) };
}

const until = (check: () => boolean) => new Promise<void>((resolve, reject) => {
  const deadline = Date.now() + 2_000;
  const poll = () => (check() ? resolve() : Date.now() > deadline ? reject(new Error('timed out')) : setTimeout(poll, 2));
  poll();
});

describe('HoldQueue', () => {
  it('releases each hold once its time is up, oldest first, and never one that let go', async () => {
    const queue = new HoldQueue(20);
    const released: string[] = [];
    const started = performance.now();
    const [a, b, c] = [holder('a', released), holder('b', released), holder('c', released)];
    queue.add(a);
    queue.add(b);
    b.holding = false; // its trailers came: released by the attempt itself
    await new Promise((resolve) => setTimeout(resolve, 10));
    queue.add(c);
    await until(() => released.length === 2);
    assert.deepEqual(released, ['a', 'c']);
    assert.ok(performance.now() - started >= 29, 'c waited its own hold, not a\'s');
    assert.equal(a.holding, false);
    // The queue is empty again, and works for the next hold.
    const d = holder('d', released);
    queue.add(d);
    await until(() => released.length === 3);
    assert.equal(released[2], 'd');
  });
});
