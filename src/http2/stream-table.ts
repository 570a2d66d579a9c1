/**
 * A connection's open streams by id: an open-addressing hash table with linear probing and
 * backward-shift deletion (no tombstones), in place of a Map.
 *
 * Why not a Map: V8 rebuilds a Map's hash table as it grows and shrinks, and the old table is
 * linked to its successor (for iterators still walking it) and still holds its entries. A connection's map
 * churns through a table every few RPCs; once one of those tables is promoted to the old
 * generation, it keeps its successors and their streams alive through every scavenge until the
 * next full GC, so whole RPCs (streams, bridges, buffers) were promoted: about 2 KB per RPC,
 * scavenges finding 6-13 MiB alive and pausing 8-15 ms under load. Here the slots are fixed
 * arrays that grow only when the table is half full, and a closed stream's slot is cleared. It
 * never shrinks: a connection that once had N streams open keeps 2N slots (12 bytes each).
 *
 * Stream ids on a connection rise by two, so `id >>> 1` spreads them over the slots evenly.
 */
const FIRST_CAPACITY = 8;

export class StreamTable<S> {
  /** 0 marks an empty slot: stream 0 is the connection, never a stream. */
  #ids: Uint32Array | undefined;
  #streams: (S | undefined)[] = [];
  #mask = 0;
  size = 0;

  get(id: number): S | undefined {
    const ids = this.#ids;
    if (ids === undefined) return undefined;
    const mask = this.#mask;
    for (let slot = (id >>> 1) & mask; ; slot = (slot + 1) & mask) {
      const at = ids[slot]!;
      if (at === id) return this.#streams[slot];
      if (at === 0) return undefined;
    }
  }

  set(id: number, stream: S): void {
    if (this.#ids === undefined) this.#resize(FIRST_CAPACITY);
    else if ((this.size + 1) * 2 > this.#ids.length) this.#resize(this.#ids.length * 2);
    if (this.#place(id, stream)) this.size++;
  }

  delete(id: number): boolean {
    const ids = this.#ids;
    if (ids === undefined) return false;
    const mask = this.#mask;
    let slot = (id >>> 1) & mask;
    while (ids[slot] !== id) {
      if (ids[slot] === 0) return false;
      slot = (slot + 1) & mask;
    }
    // Backward shift: move later entries of the same probe run into the hole, so lookups never
    // stop early at it.
    const streams = this.#streams;
    let hole = slot;
    for (let next = (hole + 1) & mask; ids[next] !== 0; next = (next + 1) & mask) {
      const home = (ids[next]! >>> 1) & mask;
      // The entry at `next` may move to the hole only if its home is not between the hole and it.
      const between = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (between) continue;
      ids[hole] = ids[next]!;
      streams[hole] = streams[next];
      hole = next;
    }
    ids[hole] = 0;
    streams[hole] = undefined;
    this.size--;
    return true;
  }

  /** The open streams, copied: callers may close streams while going through them. */
  values(): S[] {
    const out: S[] = [];
    if (this.size === 0) return out;
    const ids = this.#ids!;
    for (let slot = 0; slot < ids.length; slot++) if (ids[slot] !== 0) out.push(this.#streams[slot]!);
    return out;
  }

  /** Places `stream` under `id`; true if the id was new. */
  #place(id: number, stream: S): boolean {
    const ids = this.#ids!;
    const mask = this.#mask;
    let slot = (id >>> 1) & mask;
    while (ids[slot] !== 0 && ids[slot] !== id) slot = (slot + 1) & mask;
    const added = ids[slot] === 0;
    ids[slot] = id;
    this.#streams[slot] = stream;
    return added;
  }

  #resize(capacity: number): void {
    const oldIds = this.#ids;
    const oldStreams = this.#streams;
    this.#ids = new Uint32Array(capacity);
    this.#streams = new Array<S | undefined>(capacity).fill(undefined);
    this.#mask = capacity - 1;
    if (oldIds === undefined) return;
    for (let slot = 0; slot < oldIds.length; slot++) if (oldIds[slot] !== 0) this.#place(oldIds[slot]!, oldStreams[slot]!);
  }
}
