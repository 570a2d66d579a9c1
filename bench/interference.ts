/**
 * CPU used by processes that are not the bench's: on a small shared machine
 * a test suite running next to the bench changes every figure, so each
 * measurement records how many cores other processes used meanwhile, and
 * the bench waits (within a budget) for such load to pass before measuring.
 *
 * "Other processes" = every process outside this one's tree, except kernel
 * threads (children of kthreadd, pid 2: ksoftirqd does the bench's own
 * loopback networking). A process that exits during a window is counted
 * through its parent's cutime/cstime once reaped; that adds all of its CPU
 * time, so what it had used before the window is subtracted again. The
 * figure is approximate (a process reaped by init is lost, for instance).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { clkTck, treePids } from './metrics.ts';

/** CPU ticks (own + reaped children) of every non-kernel process outside our tree. */
function foreignTicks(): Map<number, number> {
  const ours = new Set(treePids(process.pid));
  const ticks = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (ours.has(pid) || pid === 2) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[1] === '2') continue; // a kernel thread
      // utime, stime, cutime, cstime: fields 14-17 of stat(5), 11-14 after the name.
      ticks.set(pid, Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]));
    } catch { /* exited while listing */ }
  }
  return ticks;
}

/** Starts a window; the returned function gives the cores other processes used on average since then. */
export function foreignLoad(): () => number {
  const start = foreignTicks();
  const startedAt = performance.now();
  return () => {
    const end = foreignTicks();
    let delta = 0;
    for (const [pid, ticks] of end) delta += Math.max(0, ticks - (start.get(pid) ?? 0));
    // Gone since the start: its parent's cutime now holds all its CPU, including what it used before the window.
    for (const [pid, ticks] of start) if (!end.has(pid)) delta -= ticks;
    const seconds = (performance.now() - startedAt) / 1000;
    return seconds > 0 ? Math.max(0, delta) / clkTck() / seconds : 0;
  };
}

/** Foreign load (cores) above which a measurement is considered disturbed. */
export const DISTURBED_CORES = 0.15;

/**
 * Waits until other processes use less than DISTURBED_CORES over a probe
 * of `probeMs`, or until `budget.ms` (shared by all calls, decremented) runs out.
 * Returns the last probe's figure.
 */
export async function waitForQuiet(budget: { ms: number }, log: (line: string) => void, probeMs = 1000): Promise<number> {
  let waitedMs = 0;
  for (;;) {
    const probe = foreignLoad();
    await sleep(probeMs);
    const cores = probe();
    if (cores < DISTURBED_CORES || budget.ms <= 0) {
      if (waitedMs > 0) log(`  (waited ${Math.round(waitedMs / 1000)} s for other processes to calm down; now ${cores.toFixed(2)} cores)`);
      return cores;
    }
    if (waitedMs === 0) log(`  other processes use ${cores.toFixed(2)} cores; waiting for quiet (budget left ${Math.round(budget.ms / 1000)} s)`);
    budget.ms -= probeMs;
    waitedMs += probeMs;
  }
}
