/** Status conditions as the Gateway API writes them: each at the object's current generation. */
import type { Condition } from './model.ts';

export function condition(type: string, ok: boolean, reason: string, message: string, generation: number | undefined): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message, ...(generation !== undefined && { observedGeneration: generation }) };
}

/**
 * `next` with each condition's lastTransitionTime: kept from `previous` when
 * its status did not change, else `now`. So an unchanged status compares equal
 * and is not written again.
 */
export function withTransitionTimes(next: readonly Condition[], previous: readonly Condition[] | undefined, now: string): Condition[] {
  return next.map((item) => {
    const before = previous?.find((old) => old.type === item.type);
    return { ...item, lastTransitionTime: before && before.status === item.status && before.lastTransitionTime ? before.lastTransitionTime : now };
  });
}
