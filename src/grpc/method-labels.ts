/**
 * Bounded label values for gRPC methods. Paths come from clients, so a
 * label per path would let anyone add series without limit by sending random
 * method names. A method gets labels of its own when the config names it, or
 * once a backend has answered it with something other than UNIMPLEMENTED (so
 * it exists), up to a cap; every other path is counted as "unknown".
 */
import { Status } from './status.ts';

export interface MethodLabels {
  readonly service: string;
  readonly method: string;
}

export const UNKNOWN_METHOD: MethodLabels = { service: 'unknown', method: 'unknown' };


export class MethodLabeler {
  #named: ReadonlyMap<string, MethodLabels> = new Map();
  readonly #learned = new Map<string, MethodLabels>();
  #maxLearned = 0;

  /** `named`: paths that always get labels (`/pkg.Service/Method`). */
  constructor(named: Iterable<string>, maxLearned: number) {
    this.configure(named, maxLearned);
  }

  /** After a reload: methods learned so far keep their labels (their series exist already). */
  configure(named: Iterable<string>, maxLearned: number): void {
    this.#named = new Map([...named].flatMap((path) => {
      const labels = splitMethodPath(path);
      return labels ? [[path, labels] as const] : [];
    }));
    this.#maxLearned = maxLearned;
  }

  /** The labels an RPC on `path` is counted under. */
  labelsFor(path: string): MethodLabels {
    return this.#named.get(path) ?? this.#learned.get(path) ?? UNKNOWN_METHOD;
  }

  /**
   * Learns `path` from how a backend answered it. Counted from the next RPC
   * on: an RPC keeps the labels it started with, so started and handled agree.
   */
  observe(path: string, answeredByBackend: boolean, status: number | undefined): void {
    if (!answeredByBackend || status === undefined || status === Status.UNIMPLEMENTED) return;
    if (this.#learned.size >= this.#maxLearned || this.#named.has(path) || this.#learned.has(path)) return;
    const labels = splitMethodPath(path);
    if (labels) this.#learned.set(path, labels);
  }

  get learnedCount(): number {
    return this.#learned.size;
  }
}

/** `/pkg.Service/Method` → its parts; undefined for anything else. */
export function splitMethodPath(path: string): MethodLabels | undefined {
  const slash = path.indexOf('/', 1);
  if (!path.startsWith('/') || slash < 2 || slash === path.length - 1 || path.indexOf('/', slash + 1) >= 0) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}
