import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseMemoryLimit, startOverloadMonitor } from '../../src/resilience/overload.ts';

describe('overload monitor', () => {
  it('refuses from the limit on, and accepts again only below 90% of it', async () => {
    let rss = 50 << 20;
    const changes: boolean[] = [];
    const monitor = startOverloadMonitor({ maxMemoryMb: 100, rss: () => rss, onChange: (overloaded) => changes.push(overloaded) });
    try {
      assert.equal(monitor.limitBytes, 100 << 20);
      assert.equal(monitor.overloaded, false);
      rss = 100 << 20;
      await waitForSample(() => monitor.overloaded);
      rss = 95 << 20;
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(monitor.overloaded, true, 'still overloaded between 90% and the limit');
      rss = 89 << 20;
      await waitForSample(() => !monitor.overloaded);
      assert.deepEqual(changes, [true, false]);
    } finally {
      monitor.close();
    }
  });

  it('auto: 90% of the container limit; no container limit, no limit', () => {
    const limited = startOverloadMonitor({ maxMemoryMb: 'auto', rss: () => 0, containerLimitBytes: () => 1000 << 20 });
    const unlimited = startOverloadMonitor({ maxMemoryMb: 'auto', rss: () => 2 ** 40, containerLimitBytes: () => undefined });
    try {
      assert.equal(limited.limitBytes, Math.floor((1000 << 20) * 0.9));
      assert.equal(unlimited.limitBytes, undefined);
      assert.equal(unlimited.overloaded, false);
    } finally {
      limited.close();
      unlimited.close();
    }
  });

  it('reads cgroup limits as written: a byte count, "max", and v1\'s page-rounded 2^63', () => {
    assert.equal(parseMemoryLimit('536870912'), 512 << 20);
    assert.equal(parseMemoryLimit('max'), undefined);
    assert.equal(parseMemoryLimit('9223372036854771712'), undefined);
    assert.equal(parseMemoryLimit('garbage'), undefined);
  });
});

async function waitForSample(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('the monitor did not sample in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
