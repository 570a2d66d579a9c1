/**
 * The proxy's own memory, as Envoy's overload manager watches its heap: past
 * a limit, new RPCs are refused with UNAVAILABLE (reason `overloaded`, which
 * clients retry on another replica) while those in flight go on, rather than
 * the process growing until the OOM killer takes every RPC down with it.
 *
 * The limit is `overload.max_memory_mb`, or with `auto` (the default) 90% of
 * the container's memory limit (cgroup v2 memory.max or v1
 * memory.limit_in_bytes); with neither, there is no limit. The resident set
 * size is sampled every SAMPLE_MS; refusing starts at the limit and stops
 * below RECOVER_SHARE of it, so the state does not flap.
 */
import { readFileSync } from 'node:fs';

const SAMPLE_MS = 250;
const RECOVER_SHARE = 0.9;
/** With `auto`: the share of the container's limit at which new RPCs are refused. */
const AUTO_SHARE = 0.9;

export interface OverloadMonitor {
  /** True while new RPCs are to be refused. Read once per RPC: a field, not a measurement. */
  readonly overloaded: boolean;
  /** The limit in bytes, or undefined when there is none. */
  readonly limitBytes: number | undefined;
  close(): void;
}

export interface OverloadOptions {
  readonly maxMemoryMb: number | 'auto';
  /** Called when the state changes (to log it). */
  readonly onChange?: (overloaded: boolean, rssBytes: number, limitBytes: number) => void;
  /** Injected for tests. */
  readonly rss?: () => number;
  readonly containerLimitBytes?: () => number | undefined;
}

export function startOverloadMonitor(options: OverloadOptions): OverloadMonitor {
  const containerLimit = options.containerLimitBytes ?? readContainerMemoryLimit;
  const limitBytes = options.maxMemoryMb === 'auto' ? autoLimit(containerLimit()) : options.maxMemoryMb * 2 ** 20;
  const rss = options.rss ?? (() => process.memoryUsage.rss());
  const monitor = { overloaded: false, limitBytes, close: () => clearInterval(timer) };
  const sample = () => {
    if (limitBytes === undefined) return;
    const now = rss();
    const next = monitor.overloaded ? now >= limitBytes * RECOVER_SHARE : now >= limitBytes;
    if (next === monitor.overloaded) return;
    monitor.overloaded = next;
    options.onChange?.(next, now, limitBytes);
  };
  const timer = setInterval(sample, SAMPLE_MS);
  timer.unref();
  sample();
  return monitor;
}

function autoLimit(container: number | undefined): number | undefined {
  return container === undefined ? undefined : Math.floor(container * AUTO_SHARE);
}

/** A limit above this is "no limit" (cgroup v1 reports 2^63 rounded to the page size). */
const UNLIMITED = 2 ** 60;

/** The cgroup memory limit of this process's container, in bytes; undefined when there is none. */
export function readContainerMemoryLimit(): number | undefined {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch {
      continue;
    }
    return parseMemoryLimit(text);
  }
  return undefined;
}

/** `max` or a byte count, as cgroups write them. */
export function parseMemoryLimit(text: string): number | undefined {
  if (text === 'max') return undefined;
  const bytes = Number(text);
  return Number.isFinite(bytes) && bytes > 0 && bytes < UNLIMITED ? bytes : undefined;
}
