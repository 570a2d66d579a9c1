/**
 * Reads one direction of a WebSocket connection (RFC 6455 §5) as it passes
 * through the proxy, frame header by frame header, and passes every byte on
 * unchanged: payloads are never buffered, copied or unmasked. What it checks,
 * each at the header, before a byte of the frame has been passed on:
 *
 * - masking: frames from a client must be masked, frames from a server must not (§5.1);
 * - opcodes and reserved bits: no reserved opcode, no RSV bit without an extension (§5.2);
 * - control frames: final, at most 125 bytes, a close payload not of 1 byte (§5.5);
 * - fragmentation: continuations only inside a message, no new message inside one (§5.4);
 * - limits: frame size, message size (the fragments so far plus this one), fragments per message.
 *
 * A header may arrive split over reads: its bytes (14 at most) wait here
 * until the rest comes. Control frames' payloads are read (not held) to learn
 * close codes. The owner hears of frame ends only when it asks (to insert a
 * frame of its own at a boundary), and of every control frame.
 */

export const Opcode = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** Close codes the proxy sends (RFC 6455 §7.4.1). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
} as const;

export interface FrameRules {
  /** Frames read here must be masked (they come from a client), or must not be (from a server). */
  readonly masked: boolean;
  /** RSV1-3 may be set: an extension (permessage-deflate, say) was negotiated and gives them a meaning. */
  readonly reservedBitsAllowed: boolean;
  readonly maxFrameBytes: number;
  readonly maxMessageBytes: number;
  readonly maxFragments: number;
}

/** Where the scanner's output goes. */
export interface FrameSink {
  /** Bytes to pass on as they are: a slice of what was fed (or the few header bytes held between reads). */
  pass(bytes: Buffer): void;
  /**
   * A frame ended here, and everything before this point has been passed. Called for every control
   * frame, and for other frames only while `wantsBoundary` is true. `closeCode`: a close frame's code
   * (1005 when it had none).
   */
  boundary(opcode: number, closeCode: number | undefined): void;
  /** The frame starting here breaks a rule (a close code and why); none of it was passed, and nothing will be. */
  violation(code: number, reason: string): void;
  /** Asked at each frame end: the owner wants to insert something there. */
  readonly wantsBoundary: boolean;
}

/** No status code was present in a close frame (§7.4.1): reported, never sent. */
export const NO_STATUS_CODE = 1005;

const MAX_HEADER_BYTES = 14;
const MAX_CONTROL_PAYLOAD = 125;
/** 2^53: a 64-bit length beyond it is over any limit there can be (and not a safe integer). */
const HIGH_WORD_LIMIT = 0x200000;

export class FrameScanner {
  readonly #rules: FrameRules;
  readonly #sink: FrameSink;
  /** Header bytes of a header split over reads; made the first time one is (most sessions never see one). */
  #held: Buffer | undefined;
  #headLength = 0;
  /** Payload bytes still to come of the frame being read; with #inPayload, the scanner is inside a frame. */
  #payloadLeft = 0;
  #inPayload = false;
  #opcode = 0;
  /** A close frame's first two payload bytes, unmasked as they pass. */
  #closeCode = 0;
  #closeRead = 0;
  #mask: number[] | undefined;
  #payloadOffset = 0;
  /** A fragmented data message is under way: its bytes and frames so far. */
  #inMessage = false;
  #messageBytes = 0;
  #fragments = 0;
  #stopped = false;
  /** Frames read whole, other than pongs: the owner's measure of activity. */
  frames = 0;
  /** Bytes fed. */
  bytes = 0;

  constructor(rules: FrameRules, sink: FrameSink) {
    this.#rules = rules;
    this.#sink = sink;
  }

  /** True between frames: a frame inserted now lands on a boundary. */
  get atBoundary(): boolean {
    return !this.#inPayload && this.#headLength === 0;
  }

  /** Inside a frame, or with a frame read whole since the last call: the peer is doing something (pongs aside). */
  takeActivity(): boolean {
    const active = this.frames !== this.#framesSeen || this.#inPayload;
    this.#framesSeen = this.frames;
    return active;
  }

  #framesSeen = 0;

  /** Nothing more is read or passed (after a violation, or when the owner is done with this direction). */
  stop(): void {
    this.#stopped = true;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  feed(chunk: Buffer): void {
    if (this.#stopped) return;
    this.bytes += chunk.length;
    const size = chunk.length;
    let offset = 0;
    /** Start of the bytes read but not yet passed on. */
    let run = 0;
    while (offset < size) {
      if (this.#inPayload) {
        const take = this.#payloadLeft < size - offset ? this.#payloadLeft : size - offset;
        if (this.#opcode === Opcode.CLOSE && this.#closeRead < 2) this.#readCloseCode(chunk, offset, take);
        offset += take;
        this.#payloadLeft -= take;
        this.#payloadOffset += take;
        if (this.#payloadLeft > 0) break;
        this.#inPayload = false;
        if (this.#frameEnded(chunk, run, offset)) run = offset;
        if (this.#stopped) return;
        continue;
      }
      const start = offset;
      let header: Buffer;
      let at: number;
      if (this.#headLength === 0 && size - offset >= 2 && size - offset >= headerSize(chunk[offset]!, chunk[offset + 1]!)) {
        header = chunk;
        at = offset;
        offset += headerSize(chunk[offset]!, chunk[offset + 1]!);
      } else {
        // A header split over reads: pass what came before it, hold its bytes until it is whole.
        const held = (this.#held ??= Buffer.alloc(MAX_HEADER_BYTES));
        const need = this.#headLength < 2 ? 2 : headerSize(held[0]!, held[1]!);
        const take = Math.min(need - this.#headLength, size - offset);
        if (this.#headLength === 0 && start > run) this.#sink.pass(chunk.subarray(run, start));
        chunk.copy(held, this.#headLength, offset, offset + take);
        this.#headLength += take;
        offset += take;
        run = offset;
        if (this.#headLength < need || (need === 2 && this.#headLength === 2 && headerSize(held[0]!, held[1]!) > 2)) continue;
        header = held;
        at = 0;
      }
      const problem = this.#readHeader(header, at);
      if (problem !== undefined) {
        if (header === chunk && start > run) this.#sink.pass(chunk.subarray(run, start));
        // What was passed ends where this frame began: a boundary, where the owner may insert a close.
        this.#headLength = 0;
        this.#stopped = true;
        this.#sink.violation(problem.code, problem.reason);
        return;
      }
      if (header !== chunk) {
        this.#sink.pass(Buffer.from(header.subarray(0, this.#headLength)));
        this.#headLength = 0;
      }
      if (this.#payloadLeft === 0) {
        this.#inPayload = false;
        if (this.#frameEnded(chunk, run, offset)) run = offset;
        if (this.#stopped) return;
      }
    }
    if (offset > run && !this.#stopped) this.#sink.pass(chunk.subarray(run, offset));
  }

  /** Reads a whole header at `at`; sets up the frame, or says which rule it breaks. */
  #readHeader(bytes: Buffer, at: number): { code: number; reason: string } | undefined {
    const first = bytes[at]!;
    const second = bytes[at + 1]!;
    const fin = (first & 0x80) !== 0;
    const opcode = first & 0x0f;
    const masked = (second & 0x80) !== 0;
    let length = second & 0x7f;
    let next = at + 2;
    if (length === 126) {
      length = bytes.readUInt16BE(next);
      next += 2;
    } else if (length === 127) {
      const high = bytes.readUInt32BE(next);
      if (high >= 0x80000000) return { code: CloseCode.PROTOCOL_ERROR, reason: 'a 64-bit length with its top bit set' };
      length = high >= HIGH_WORD_LIMIT ? Number.MAX_SAFE_INTEGER : high * 2 ** 32 + bytes.readUInt32BE(next + 4);
      next += 8;
    }
    const rules = this.#rules;
    if (masked !== rules.masked) return { code: CloseCode.PROTOCOL_ERROR, reason: rules.masked ? 'an unmasked frame from the client' : 'a masked frame from the server' };
    if ((first & 0x70) !== 0 && (!rules.reservedBitsAllowed || opcode >= Opcode.CLOSE || opcode === Opcode.CONTINUATION)) {
      return { code: CloseCode.PROTOCOL_ERROR, reason: 'reserved bits set without an extension that uses them' };
    }
    if (opcode >= Opcode.CLOSE) {
      if (opcode > Opcode.PONG) return { code: CloseCode.PROTOCOL_ERROR, reason: `reserved opcode ${opcode}` };
      if (!fin) return { code: CloseCode.PROTOCOL_ERROR, reason: 'a fragmented control frame' };
      if (length > MAX_CONTROL_PAYLOAD) return { code: CloseCode.PROTOCOL_ERROR, reason: 'a control frame over 125 bytes' };
      if (opcode === Opcode.CLOSE && length === 1) return { code: CloseCode.PROTOCOL_ERROR, reason: 'a close frame with a 1-byte payload' };
    } else {
      if (opcode > Opcode.BINARY) return { code: CloseCode.PROTOCOL_ERROR, reason: `reserved opcode ${opcode}` };
      if (opcode === Opcode.CONTINUATION && !this.#inMessage) return { code: CloseCode.PROTOCOL_ERROR, reason: 'a continuation frame outside a message' };
      if (opcode !== Opcode.CONTINUATION && this.#inMessage) return { code: CloseCode.PROTOCOL_ERROR, reason: 'a new message before the fragmented one ended' };
      if (length > rules.maxFrameBytes) return { code: CloseCode.MESSAGE_TOO_BIG, reason: `a frame of ${describeLength(length)} (max_frame_bytes ${rules.maxFrameBytes})` };
      const messageBytes = opcode === Opcode.CONTINUATION ? this.#messageBytes + length : length;
      if (messageBytes > rules.maxMessageBytes) return { code: CloseCode.MESSAGE_TOO_BIG, reason: `a message of ${describeLength(messageBytes)} or more (max_message_bytes ${rules.maxMessageBytes})` };
      const fragments = opcode === Opcode.CONTINUATION ? this.#fragments + 1 : 1;
      if (fragments > rules.maxFragments) return { code: CloseCode.POLICY_VIOLATION, reason: `a message in more than ${rules.maxFragments} fragments (max_fragments)` };
      this.#messageBytes = messageBytes;
      this.#fragments = fragments;
      this.#inMessage = !fin;
    }
    this.#opcode = opcode;
    this.#mask = masked ? [bytes[next]!, bytes[next + 1]!, bytes[next + 2]!, bytes[next + 3]!] : undefined;
    this.#payloadLeft = length;
    this.#payloadOffset = 0;
    this.#closeRead = 0;
    this.#closeCode = 0;
    this.#inPayload = true;
    return undefined;
  }

  /** Unmasks the close code as its two bytes pass (they may come in different reads). */
  #readCloseCode(chunk: Buffer, offset: number, take: number): void {
    for (let i = 0; i < take && this.#closeRead < 2; i++) {
      const position = this.#payloadOffset + i;
      const byte = chunk[offset + i]! ^ (this.#mask ? this.#mask[position & 3]! : 0);
      this.#closeCode = (this.#closeCode << 8) | byte;
      this.#closeRead++;
    }
  }

  /** A frame ended at `end` of `chunk`. Returns true when the bytes up to it were passed (the run restarts there). */
  #frameEnded(chunk: Buffer, run: number, end: number): boolean {
    const opcode = this.#opcode;
    if (opcode !== Opcode.PONG) this.frames++;
    const sink = this.#sink;
    if (opcode < Opcode.CLOSE && !sink.wantsBoundary) return false;
    if (end > run) sink.pass(chunk.subarray(run, end));
    sink.boundary(opcode, opcode === Opcode.CLOSE ? (this.#closeRead === 2 ? this.#closeCode : NO_STATUS_CODE) : undefined);
    return true;
  }
}

/** The size of a frame header from its first two bytes: 2, plus the extended length, plus the mask key. */
function headerSize(_first: number, second: number): number {
  const length = second & 0x7f;
  return 2 + (length === 126 ? 2 : length === 127 ? 8 : 0) + ((second & 0x80) !== 0 ? 4 : 0);
}

function describeLength(bytes: number): string {
  return bytes >= Number.MAX_SAFE_INTEGER ? 'over 2^53 bytes' : `${bytes} bytes`;
}
