/**
 * Watches one direction of a gRPC stream for messages over a size limit,
 * reading only the 5-byte length prefixes as chunks pass: nothing is
 * buffered or copied, and a chunk costs a few comparisons plus one read per
 * prefix. A message is rejected when its prefix arrives, before its body:
 * a prefix claiming 2 GiB is refused after 5 bytes.
 *
 * Framing (gRPC over HTTP/2): 1 byte compressed flag, 4 bytes big-endian
 * length, then the message. A message split over chunks, and a prefix split
 * over chunks, are both handled.
 */

/** gRPC's own default for received messages (grpc-go, grpc-java, grpc-js): 4 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 << 20;

export class GrpcFrameMeter {
  readonly maxMessageBytes: number;
  /** Messages whose length prefix has been read. */
  messages = 0;
  /** Body bytes of the current message still to come; 0 when a prefix is next. */
  #bodyLeft = 0;
  /** Prefix bytes seen so far of a prefix split over chunks (0 to 4). */
  #prefixSeen = 0;
  /** The length being assembled from a split prefix. */
  #length = 0;

  constructor(maxMessageBytes: number) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /**
   * Accounts for `chunk`. Returns -1 when every message so far is within the
   * limit, else the declared length of the first one over it (after which the
   * meter should be dropped: the stream is being ended).
   */
  feed(chunk: Uint8Array): number {
    let offset = 0;
    const size = chunk.length;
    while (offset < size) {
      if (this.#bodyLeft > 0) {
        const take = Math.min(this.#bodyLeft, size - offset);
        this.#bodyLeft -= take;
        offset += take;
        continue;
      }
      if (this.#prefixSeen === 0 && size - offset >= 5) {
        // The common case: a whole prefix in this chunk.
        const length = ((chunk[offset + 1]! << 24) >>> 0) + (chunk[offset + 2]! << 16) + (chunk[offset + 3]! << 8) + chunk[offset + 4]!;
        if (length > this.maxMessageBytes) return length;
        this.messages++;
        this.#bodyLeft = length;
        offset += 5;
        continue;
      }
      // A prefix split over chunks: byte 0 is the flag, bytes 1-4 the length.
      const byte = chunk[offset]!;
      offset++;
      if (this.#prefixSeen > 0) this.#length = this.#length * 256 + byte;
      this.#prefixSeen++;
      if (this.#prefixSeen === 5) {
        const length = this.#length;
        this.#prefixSeen = 0;
        this.#length = 0;
        if (length > this.maxMessageBytes) return length;
        this.messages++;
        this.#bodyLeft = length;
      }
    }
    return -1;
  }
}
