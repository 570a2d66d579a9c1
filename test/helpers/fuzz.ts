/**
 * What the fast-check fuzz tests share: the seed (fixed, so a run is
 * repeatable; FUZZ_SEED picks another), the run counts (FUZZ_SCALE scales
 * them) and mutations of valid input.
 */
import fc from 'fast-check';

/** The seed of every fuzz property; fast-check prints it, and the shrunk counterexample, on a failure. */
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20_261_205);

/** Run counts are multiplied by FUZZ_SCALE (default 1, what `npm test` runs): a longer hunt is `FUZZ_SCALE=50`. */
export function fuzzRuns(runs: number): number {
  return Math.max(1, Math.round(runs * Number(process.env.FUZZ_SCALE ?? 1)));
}

/** Changes to valid bytes: some overwritten, a slice repeated, bytes inserted, a cut. */
export interface Mutation {
  readonly overwrite: readonly (readonly [number, number])[];
  readonly repeat: readonly [number, number] | null;
  readonly insert: readonly [number, Uint8Array] | null;
  readonly cutAt: number | null;
}

export function mutation(maxRepeat = 16): fc.Arbitrary<Mutation> {
  return fc.record({
    overwrite: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    repeat: fc.option(fc.tuple(fc.nat(), fc.nat(maxRepeat))),
    insert: fc.option(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }))),
    cutAt: fc.option(fc.nat()),
  });
}

/** `bytes` with `change` applied (positions wrap around the length). */
export function mutate(bytes: Buffer, change: Mutation): Buffer {
  if (bytes.length === 0) return Buffer.from(change.insert?.[1] ?? [0x80]);
  let out = Buffer.from(bytes);
  for (const [at, byte] of change.overwrite) out[at % out.length] = byte;
  if (change.repeat) {
    const from = change.repeat[0] % out.length;
    out = Buffer.concat([out.subarray(0, from), out.subarray(from, from + change.repeat[1]), out.subarray(from)]);
  }
  if (change.insert) {
    const at = change.insert[0] % (out.length + 1);
    out = Buffer.concat([out.subarray(0, at), Buffer.from(change.insert[1]), out.subarray(at)]);
  }
  if (change.cutAt !== null) out = out.subarray(0, change.cutAt % (out.length + 1));
  return out;
}
