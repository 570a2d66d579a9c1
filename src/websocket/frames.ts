/**
 * The few frames the proxy writes itself (RFC 6455 §5): close frames, toward
 * the client unmasked and toward the backend masked (the proxy is the
 * backend's client, §5.3), and the pings of its keepalive toward idle clients.
 */
import { cryptoModule } from '../builtins.ts';
import { Opcode } from './frame-scanner.ts';

/** A close reason is cut to fit a control frame's 125 bytes, less the code's two. */
const MAX_REASON_BYTES = 123;

/** A close frame with `code` and `reason`; masked with a fresh key when `masked`. */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  let text: Buffer = Buffer.from(reason, 'utf8');
  if (text.length > MAX_REASON_BYTES) text = cutUtf8(text, MAX_REASON_BYTES);
  const payload = Buffer.allocUnsafe(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return controlFrame(Opcode.CLOSE, payload, masked);
}

/** A ping toward the client (unmasked): the keepalive of idle sessions. */
export function pingFrame(payload: Buffer): Buffer {
  return controlFrame(Opcode.PING, payload, false);
}

function controlFrame(opcode: number, payload: Buffer, masked: boolean): Buffer {
  const frame = Buffer.allocUnsafe(2 + (masked ? 4 : 0) + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = (masked ? 0x80 : 0) | payload.length;
  if (!masked) {
    payload.copy(frame, 2);
    return frame;
  }
  const key = frame.subarray(2, 6);
  cryptoModule().randomFillSync(key);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i]! ^ key[i & 3]!;
  return frame;
}

/** The longest prefix of `bytes` within `limit` that does not split a UTF-8 character. */
function cutUtf8(bytes: Buffer, limit: number): Buffer {
  let end = limit;
  // Continuation bytes are 10xxxxxx: step back to the start of the character that would be split.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}
