/**
 * Length-prefixed messages, as gRPC, gRPC-Web and Connect streams all frame
 * them: 1 byte of flags, 4 bytes of big-endian length, the message. The
 * flags differ in meaning: bit 0 is "compressed" everywhere; gRPC-Web marks
 * its trailers with bit 7, Connect its end-of-stream message with bit 1.
 */

export const FLAG_COMPRESSED = 0x01;
/** Connect: the last message of a response, a JSON EndStreamResponse. */
export const FLAG_CONNECT_END_STREAM = 0x02;
/** gRPC-Web: the trailers, as an HTTP/1 header block. */
export const FLAG_GRPC_WEB_TRAILERS = 0x80;

export interface Envelope {
  readonly flags: number;
  readonly message: Buffer;
}

/** Puts `message` in an envelope with `flags`. */
export function envelope(flags: number, message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = flags;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/**
 * Reassembles whole envelopes from chunks cut anywhere. A message is held
 * until it is complete, so at most one message (plus its prefix) is buffered:
 * the caller bounds that with the length it is told about first.
 */
export class EnvelopeReader {
  readonly #maxMessageBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** The current message's length once its prefix is in; -1 while the prefix is still incomplete. */
  #length = -1;
  #flags = 0;
  /** The length of a message refused for its size: nothing more is read. */
  #refused: number | undefined;

  /** A message longer than `maxMessageBytes` is refused when its prefix arrives, before anything of it is kept. */
  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** The envelopes `chunk` completes, in order; a number (the length declared) when one is over the limit. */
  push(chunk: Buffer): Envelope[] | number {
    if (this.#refused !== undefined) return this.#refused;
    const out: Envelope[] = [];
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    for (;;) {
      if (this.#length < 0) {
        if (this.#pendingBytes < 5) break;
        const head = this.#joined();
        this.#flags = head[0]!;
        this.#length = head.readUInt32BE(1);
        if (this.#length > this.#maxMessageBytes) {
          this.#refused = this.#length;
          this.#pending = [];
          this.#pendingBytes = 0;
          return this.#refused;
        }
      }
      if (this.#pendingBytes < 5 + this.#length) break;
      // Joined once per message, when it is complete: a message cut into many chunks is copied once.
      const all = this.#joined();
      out.push({ flags: this.#flags, message: all.subarray(5, 5 + this.#length) });
      const rest = all.subarray(5 + this.#length);
      this.#pending = rest.length > 0 ? [rest] : [];
      this.#pendingBytes = rest.length;
      this.#length = -1;
    }
    return out;
  }

  /** An envelope was begun but not finished (a body that ends here was cut short). */
  get partial(): boolean {
    return this.#pendingBytes > 0;
  }

  #joined(): Buffer {
    if (this.#pending.length > 1) this.#pending = [Buffer.concat(this.#pending)];
    return this.#pending[0]!;
  }
}
