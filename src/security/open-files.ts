/**
 * The process's open-file limit, and a gate that keeps a reserve of file
 * descriptors for what matters more than the surface asking.
 *
 * Node has no setrlimit, but it raises the soft RLIMIT_NOFILE to the hard
 * limit itself when it starts (PlatformInit in node.cc; `prlimit --nofile=
 * 1024:4096 node` sees 4096:4096). The hard limit can only be raised with
 * privileges, so it is set where the process is started (the container
 * runtime, systemd's LimitNOFILE, `ulimit -Hn`); this module only reads it.
 * Counting open descriptors needs /proc (Linux); elsewhere the gate admits
 * everything and the surfaces' own connection caps are the only bound.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface OpenFileLimit {
  readonly soft: number;
  readonly hard: number;
}

/** The process's RLIMIT_NOFILE from /proc/self/limits; undefined where there is none (not Linux) or it is unlimited. */
export function openFileLimit(): OpenFileLimit | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'latin1').split('\n').find((l) => l.startsWith('Max open files'));
    const [soft, hard] = (line?.match(/\d+|unlimited/g) ?? []).map(Number);
    return soft !== undefined && hard !== undefined && Number.isFinite(soft) && Number.isFinite(hard) ? { soft, hard } : undefined;
  } catch {
    return undefined;
  }
}

/** Descriptors open in this process now; undefined without /proc. */
export function openFileCount(): number | undefined {
  try {
    // The listing's own descriptor is in it.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}

/**
 * Descriptors left free for the serving listeners and upstream connections:
 * a tenth of the limit, and at least 64 (a small limit still keeps room for
 * a few clients, their backends' connections and the access log).
 */
export function defaultReserve(limit: number): number {
  return Math.max(64, Math.ceil(limit / 10));
}

/** Decides, per new connection, whether the process can spare a descriptor for it. */
export interface DescriptorGate {
  /** True to keep the connection (counted as one more descriptor in use); false to close it at once. */
  admit(): boolean;
}

export interface DescriptorGateOptions {
  /** Default: the soft limit now in force. */
  readonly limit?: number | undefined;
  /** Default: defaultReserve(limit). */
  readonly reserve?: number;
  /** Default: openFileCount. */
  readonly count?: () => number | undefined;
  /** Monotonic ms. Default: performance.now. */
  readonly now?: () => number;
}

/**
 * How stale a count may be. Listing /proc/self/fd costs about 0.3 ms per
 * thousand descriptors, too much for every connection of a flood, so the
 * last count plus the connections admitted since stands in for it: far from
 * the limit for up to a second, near it for up to 100 ms.
 */
const RECOUNT_FAR_MS = 1_000;
const RECOUNT_NEAR_MS = 100;

/**
 * A gate that refuses once the descriptors in use come within `reserve` of
 * `limit`. Descriptors the admitted connections free again are seen at the
 * next count. Admits everything when the limit or the count is unknown.
 */
export function descriptorGate(options: DescriptorGateOptions = {}): DescriptorGate {
  const limit = options.limit ?? openFileLimit()?.soft;
  const count = options.count ?? openFileCount;
  const now = options.now ?? (() => performance.now());
  if (limit === undefined) return { admit: () => true };
  const threshold = limit - (options.reserve ?? defaultReserve(limit));
  let counted: number | undefined;
  let countedAt = -Infinity;
  let admittedSince = 0;
  return {
    admit() {
      const estimate = (counted ?? 0) + admittedSince;
      const age = now() - countedAt;
      if (age > RECOUNT_FAR_MS || (estimate >= threshold / 2 && age > RECOUNT_NEAR_MS)) {
        counted = count();
        if (counted === undefined) return true;
        countedAt = now();
        admittedSince = 0;
      }
      // The connection already holds its descriptor: the count may include it.
      if (counted! + admittedSince >= threshold) return false;
      admittedSince++;
      return true;
    },
  };
}
