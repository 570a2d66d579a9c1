/**
 * ring_hash: consistent hashing. RPCs carrying the same hash key go to the same endpoint for as long as it is
 * in the set, and a change to the set moves only the keys that must move.
 *
 * The ring is `ringSize` equal arcs of the 32-bit hash space ("virtual nodes"); a key's arc is hash % ringSize.
 * Each arc is owned by the endpoint with the highest weighted rendezvous (HRW) score for it,
 * score = weight / -ln(u) with u a hash of (endpoint key, arc), which makes P(owner) = weight / total exactly.
 *
 * Why not Envoy's ring (each endpoint gets round(ringSize * weight / total) points at hash(`${key}_${i}`),
 * binary-searched): there every endpoint's point count depends on the size of the set, so removing one of
 * five endpoints grows each survivor from 205 to 256 points and the new points steal keys from other survivors
 * (measured: ~10% of all keys move between survivors, on top of the ~20% that had to move). With rendezvous
 * ownership an arc changes hands only when its owner leaves or a newcomer outscores it, so removal moves only
 * the removed endpoint's keys and an addition moves keys only onto the newcomer; the ring stays exactly
 * `ringSize` arcs; lookups are O(1) instead of a binary search; and the result depends only on the set of
 * (key, weight) pairs, never on their order or on history, so every proxy with the same set agrees.
 * The price is a build of O(ringSize * endpoints) hashes (1024 arcs x 100 endpoints: under 1 ms, a few ms with
 * unequal weights, which cost a logarithm each), paid only when the key/weight set actually changes.
 *
 * One exception to "only the keys that must move": an endpoint that wins no arc at all (possible only when
 * ringSize is not much larger than the endpoint count) is given its own best arc, so every endpoint gets some
 * hashed traffic, as Envoy guarantees; that arc's keys can move when the set changes for other reasons.
 */

import type { BalancedEndpoint, LoadBalancingPolicy, PickContext, PolicyDefinition, PolicyEnvironment } from './policy.ts';
import { systemEnvironment } from './policy.ts';
import { weightOf } from './random.ts';

export interface RingHashOptions {
  /**
   * Arcs ("virtual nodes") on the ring. Default 1024. Evenness depends on arcs per endpoint, as with any ring:
   * ~250 each (1024 over 4) keeps every endpoint within ~10% of its share, ~10 each (1024 over 100) does not.
   */
  readonly ringSize?: number | undefined;
}

export const DEFAULT_RING_SIZE = 1024;

/**
 * 32-bit hash of a string: FNV-1a over its UTF-16 code units, then murmur3's fmix32 finaliser.
 * FNV-1a is tiny and fast on short strings (header values, host:port keys) but mixes poorly into the high bits
 * and for inputs that differ only at the end; fmix32 gives full avalanche, so `hash % ringSize` and the HRW
 * comparisons see well-spread values. Not cryptographic: a client choosing keys can choose their endpoint,
 * which is what affinity means anyway.
 */
export function hashString(value: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    hash ^= value.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return fmix32(hash);
}

/** A well-spread 32-bit value per arc, combined with each endpoint's key hash to score the pair. */
function arcHashOf(arc: number): number {
  return fmix32(Math.imul(arc + 1, 0x9e3779b1));
}

/** murmur3's 32-bit finaliser: a bijection on uint32 with full avalanche. */
function fmix32(value: number): number {
  let hash = value;
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/**
 * Consistent hashing on `context.hashKey` (see the file comment for the design). Without a hash key the RPC
 * goes to the owner of a random arc, i.e. weighted random. The table is rebuilt only when the set of
 * (key, weight) pairs changes; a setEndpoints with the same set (in any order, with new objects) only swaps in
 * the new objects.
 */
export const ringHash = {
  name: 'ring_hash',
  // Arcs on the ring: more spreads keys more evenly across endpoints, at a little memory.
  options: { ring_size: { kind: 'integer', min: 1, max: 8_388_608, default: DEFAULT_RING_SIZE } },
  xds: { exact: 'RING_HASH', forGrpcClients: 'RING_HASH' },
  create: (env, options) => new RingHashPolicy(env, { ringSize: options.ring_size }),
} satisfies PolicyDefinition<'ring_hash'>;

export class RingHashPolicy<E extends BalancedEndpoint = BalancedEndpoint> implements LoadBalancingPolicy<E> {
  readonly #env: PolicyEnvironment;
  readonly #ringSize: number;
  /** The endpoints sorted by key, so that building and tie-breaking do not depend on the caller's order. */
  #endpoints: E[] = [];
  #weights: number[] = [];
  /** owner[arc] = index into #endpoints. */
  #owner = new Uint32Array(0);

  constructor(env: PolicyEnvironment = systemEnvironment, options: RingHashOptions = {}) {
    this.#env = env;
    const size = options.ringSize;
    this.#ringSize = size !== undefined && size >= 1 && size <= 0x7fffffff ? Math.floor(size) : DEFAULT_RING_SIZE;
  }

  setEndpoints(endpoints: readonly E[]): void {
    const sorted = endpoints.slice().sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const weights = sorted.map(weightOf);
    const unchanged =
      sorted.length === this.#endpoints.length &&
      sorted.every((endpoint, i) => endpoint.key === this.#endpoints[i]!.key && weights[i] === this.#weights[i]);
    this.#endpoints = sorted;
    this.#weights = weights;
    if (!unchanged) this.#build();
  }

  pick(context: PickContext): E | undefined {
    const endpoints = this.#endpoints;
    if (endpoints.length <= 1) return endpoints[0];
    const ringSize = this.#ringSize;
    let arc: number;
    if (context.hashKey === undefined) {
      arc = Math.floor(this.#env.random() * ringSize);
      if (arc >= ringSize) arc = ringSize - 1;
    } else {
      arc = hashString(context.hashKey) % ringSize;
    }
    return endpoints[this.#owner[arc]!];
  }

  #build(): void {
    const n = this.#endpoints.length;
    const ringSize = this.#ringSize;
    this.#owner = new Uint32Array(n > 1 ? ringSize : 0);
    if (n <= 1) return;

    const seeds = new Uint32Array(n);
    for (let k = 0; k < n; k++) seeds[k] = hashString(this.#endpoints[k]!.key);
    const weights = this.#weights;
    const uniform = weights.every((weight) => weight === weights[0]);
    const count = new Uint32Array(n);

    for (let arc = 0; arc < ringSize; arc++) {
      const arcHash = arcHashOf(arc);
      let owner = 0;
      let ownerScore = -Infinity;
      for (let k = 0; k < n; k++) {
        const hash = fmix32(seeds[k]! ^ arcHash);
        // Equal weights: the highest hash wins. Otherwise the highest weight / -ln(u), i.e. the highest ln(u) / weight.
        const score = uniform ? hash : Math.log((hash + 0.5) / 4294967296) / weights[k]!;
        if (score > ownerScore) {
          ownerScore = score;
          owner = k;
        }
      }
      this.#owner[arc] = owner;
      count[owner]!++;
    }

    // With few arcs per endpoint one can win none and would silently get no hashed traffic. Give it the arc it
    // scores best on among those whose owner has more than one (one exists whenever ringSize >= endpoints).
    // Still a function of the set alone, and rare enough that an O(ringSize) scan per starved endpoint is fine.
    for (let k = 0; k < n; k++) {
      if (count[k] !== 0) continue;
      let chosen = -1;
      let chosenHash = -1;
      for (let arc = 0; arc < ringSize; arc++) {
        // For one endpoint a higher hash is a higher score in both modes.
        const hash = fmix32(seeds[k]! ^ arcHashOf(arc));
        if (hash > chosenHash && count[this.#owner[arc]!]! > 1) {
          chosen = arc;
          chosenHash = hash;
        }
      }
      if (chosen < 0) continue; // more endpoints than arcs
      count[this.#owner[chosen]!]!--;
      this.#owner[chosen] = k;
      count[k] = 1;
    }
  }
}
