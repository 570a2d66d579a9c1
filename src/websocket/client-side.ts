/**
 * The client of an upgrade, before and after it is answered: over HTTP/1.1
 * the socket Node's server handed over (answers are written raw: the HTTP/1.1
 * parser is gone), over HTTP/2 the extended CONNECT stream (RFC 8441: 200
 * instead of 101, no key and no accept, the tunnel ends with END_STREAM).
 */
import type { Duplex } from 'node:stream';
import { httpModule } from '../builtins.ts';
import type { HeaderMap, TunnelStream } from '../grpc/streams.ts';
import { SocketEnd, StreamEnd, type TunnelEnd } from './tunnel-ends.ts';

/** How long a refused client may take to close its side after the answer. */
const REFUSED_LINGER_MS = 5_000;

/** Response fields that describe the connection, never passed from a backend's answer. */
const HOP_BY_HOP = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'content-length', 'sec-websocket-accept', 'http2-settings']);

export type ResponseFields = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface ClientSide {
  /** Gone before it was answered (nothing more to do for it). */
  readonly gone: boolean;
  /** Answers with `status` and a body, then ends. */
  refuse(status: number, fields: ResponseFields, body: Buffer | string): void;
  /** Answers the handshake (101 with `accept`, or 200 over HTTP/2) and hands over the tunnel's client end. */
  accept(fields: ResponseFields, accept: string | undefined): TunnelEnd;
}

/** An upgraded HTTP/1.1 connection. */
export class Http1Client implements ClientSide {
  readonly #socket: Duplex;
  readonly #head: Buffer;

  constructor(socket: Duplex, head: Buffer) {
    this.#socket = socket;
    this.#head = head;
    // Nothing is read until the backend has answered (a client may not send frames before the 101 anyway).
    socket.pause();
    socket.on('error', ignore);
  }

  get gone(): boolean {
    return this.#socket.destroyed || !this.#socket.writable;
  }

  refuse(status: number, fields: ResponseFields, body: Buffer | string): void {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    const head = [`HTTP/1.1 ${status} ${httpModule().STATUS_CODES[status] ?? 'Unknown'}`, ...fieldLines(fields), 'connection: close', `content-length: ${bytes.length}`, '', ''].join('\r\n');
    const socket = this.#socket;
    socket.end(Buffer.concat([Buffer.from(head, 'latin1'), bytes]));
    // Read (and drop) what the client still sends, so its FIN is seen and the socket closes; a client
    // that never closes is cut after a while rather than held for ever.
    socket.resume();
    const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
    socket.once('close', () => clearTimeout(linger));
  }

  accept(fields: ResponseFields, accept: string | undefined): TunnelEnd {
    const lines = ['HTTP/1.1 101 Switching Protocols', 'upgrade: websocket', 'connection: Upgrade', `sec-websocket-accept: ${accept}`, ...fieldLines(fields), '', ''];
    this.#socket.write(lines.join('\r\n'), 'latin1');
    return new SocketEnd(this.#socket, this.#head);
  }
}

/** An extended CONNECT stream. */
export class Http2Client implements ClientSide {
  readonly #stream: TunnelStream;

  constructor(stream: TunnelStream) {
    this.#stream = stream;
  }

  get gone(): boolean {
    return this.#stream.closed;
  }

  refuse(status: number, fields: ResponseFields, body: Buffer | string): void {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    this.#stream.respond({ ':status': status, ...headerMap(fields) }, bytes.length === 0);
    if (bytes.length === 0) return;
    this.#stream.write(bytes);
    this.#stream.finish();
  }

  accept(fields: ResponseFields): TunnelEnd {
    this.#stream.respond({ ':status': 200, ...headerMap(fields) }, false);
    return new StreamEnd(this.#stream);
  }
}

/** A backend's response fields worth passing on (hop-by-hop ones left out). */
export function passableFields(fields: Readonly<Record<string, string | string[] | undefined>>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

function fieldLines(fields: ResponseFields): string[] {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    for (const one of typeof value === 'string' ? [value] : value) lines.push(`${name}: ${one}`);
  }
  return lines;
}

function headerMap(fields: ResponseFields): HeaderMap {
  const map: HeaderMap = {};
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined) map[name] = typeof value === 'string' ? value : [...value];
  }
  return map;
}

function ignore(): void {}
