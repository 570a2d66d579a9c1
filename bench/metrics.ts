/**
 * CPU time and memory of a process tree, from /proc (Linux only).
 *
 * A target is a tree: nginx is a master and its workers, Switchyard with
 * --workers is a primary and its workers, a sh wrapper execs into its
 * command. Every figure here sums over the root pid and all its
 * descendants alive at the moment of reading.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clockTicks: number | undefined;

/** Clock ticks per second for /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on Linux almost always). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Fields after the command name; the name is in parentheses and may itself contain spaces and ')'. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // exited between listing and reading
  }
}

/** The pid and every descendant, by following ppid links over all of /proc. */
export function treePids(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    const ppid = Number(fields?.[1]);
    if (!fields || !Number.isFinite(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** utime + stime of the whole tree, in seconds. (Children that already exited are not counted; targets keep theirs alive.) */
export function cpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of treePids(root)) {
    const fields = statFields(pid);
    // After "pid (comm) ": state is field 0, utime field 11, stime field 12 (stat(5) fields 14 and 15).
    if (fields) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / clkTck();
}

function statusKiB(pid: number, key: string): number {
  try {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Peak resident set (VmHWM) summed over the tree, MiB. Shared pages count once per process, as `ps` would. */
export function peakRssMiB(root: number): number {
  return treePids(root).reduce((sum, pid) => sum + statusKiB(pid, 'VmHWM'), 0) / 1024;
}

/** Current resident set (VmRSS) summed over the tree, MiB. */
export function rssMiB(root: number): number {
  return treePids(root).reduce((sum, pid) => sum + statusKiB(pid, 'VmRSS'), 0) / 1024;
}

/** The soft "Max open files" limit the process runs with. */
export function nofileLimit(pid: number): number | undefined {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return match?.[1] === 'unlimited' ? Infinity : match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Our own hard open-file limit: what a child can raise its soft limit to (more needs CAP_SYS_RESOURCE). */
export function nofileHardLimit(): number {
  const match = /^Max open files\s+\S+\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match?.[1] === 'unlimited' ? 1 << 20 : match ? Number(match[1]) : 1024;
}
