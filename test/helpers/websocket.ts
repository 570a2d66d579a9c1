/**
 * WebSocket tests with real parts: `ws` servers as backends (HTTP/1.1, each
 * naming itself in an `x-backend` field of its 101 and echoing every
 * message), `ws` clients over HTTP/1.1, a `ws` client driven over an HTTP/2
 * extended CONNECT stream (RFC 8441) from Node's own HTTP/2 client, a proxy
 * with WebSocket routes, and raw sockets for what no library would send.
 */
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { configSchema } from '../../src/config/schema.ts';
import type { ConfigSecrets } from '../../src/config/load.ts';
import { Switchyard } from '../../src/switchyard.ts';
import type { WebSocketRecord } from '../../src/websocket/session-record.ts';

export { WebSocket };

export interface WsBackend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly server: WebSocketServer;
  /** Sessions open on it now. */
  readonly open: Set<WebSocket>;
  /** Close codes its sessions ended with, as it saw them. */
  readonly closeCodes: number[];
  /** Request headers of every upgrade it answered. */
  readonly upgrades: http.IncomingHttpHeaders[];
  /** Drops every connection without a close frame and stops listening (a crash). */
  kill(): Promise<void>;
  close(): Promise<void>;
}

export interface WsBackendOptions {
  /** Default 127.0.0.1; other loopback addresses give backends a host of their own (for a shared health port). */
  readonly host?: string;
  /** Default 0 (the OS picks). */
  readonly port?: number;
  /** Changes the 101 before it goes out (to break the handshake on purpose). */
  readonly headers?: (headers: string[]) => void;
  /** Answers the upgrade itself, instead of the ws server. */
  readonly upgrade?: (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => void;
}

/** A `ws` server on 127.0.0.1, port 0, that echoes every message back (`<name>:` prefixed for text). */
export async function startWsBackend(name: string, options: WsBackendOptions = {}): Promise<WsBackend> {
  const server = http.createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain', 'x-backend': name });
    response.end(`${name} ${request.method} ${request.url}\n`);
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 << 20 });
  const open = new Set<WebSocket>();
  const closeCodes: number[] = [];
  const upgrades: http.IncomingHttpHeaders[] = [];
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  wss.on('headers', (headers) => {
    headers.push(`x-backend: ${name}`);
    options.headers?.(headers);
  });
  server.on('upgrade', (request, socket, head) => {
    upgrades.push(request.headers);
    if (options.upgrade) return options.upgrade(request, socket as net.Socket, head);
    wss.handleUpgrade(request, socket, head, (ws) => {
      open.add(ws);
      ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `${name}:${data.toString()}`, { binary: isBinary }));
      ws.on('close', (code) => {
        open.delete(ws);
        closeCodes.push(code);
      });
      ws.on('error', () => {});
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  const close = async () => {
    for (const ws of open) ws.terminate();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { name, host, port, server: wss, open, closeCodes, upgrades, kill: close, close };
}

export interface WsProxy {
  readonly proxy: Switchyard;
  readonly port: number;
  /** Every upgrade's record, as the proxy reported it. */
  readonly records: WebSocketRecord[];
  close(): Promise<void>;
}

/** A proxy with one cleartext listener on port 0 (unless the config names listeners). */
export async function startWsProxy(config: Record<string, unknown>, secrets?: ConfigSecrets): Promise<WsProxy> {
  const parsed = configSchema.parse({ listeners: [{ name: 'main', port: 0, plaintext: true }], ...config });
  const records: WebSocketRecord[] = [];
  const proxy = await Switchyard.start({ config: parsed, ...(secrets && { secrets }), logger: pino({ level: 'silent' }), onWebSocketEnd: (record) => records.push(record) });
  return { proxy, port: proxy.listeners[0]!.address.port, records, close: () => proxy.stop(1_000) };
}

/** The records the proxy has reported since there were `count` (waiting for at least one more). */
export async function recordsAfter(proxy: WsProxy, count: number, expected = 1): Promise<WebSocketRecord[]> {
  const deadline = performance.now() + 10_000;
  while (proxy.records.length < count + expected) {
    if (performance.now() > deadline) throw new Error(`expected ${expected} more WebSocket record(s) after ${count}; have ${proxy.records.length}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return proxy.records.slice(count);
}

export function wsCluster(name: string, backends: readonly WsBackend[], extra: Record<string, unknown> = {}) {
  return { name, endpoints: backends.map((backend) => ({ address: backend.host, port: backend.port })), ...extra };
}

/** A client that opened: which backend took it (its `x-backend` field) and the 101's fields. */
export interface OpenClient {
  readonly ws: WebSocket;
  readonly backend: string | undefined;
  readonly headers: http.IncomingHttpHeaders;
  /** Messages received, in order. */
  readonly messages: string[];
  /** Resolves with the close code and reason the client saw. */
  readonly closed: Promise<{ code: number; reason: string }>;
}

/** Opens a session through the proxy; rejects with the HTTP status when the upgrade is refused. */
export function openClient(url: string, options: WebSocket.ClientOptions = {}, protocols: string[] = []): Promise<OpenClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { ...options });
    let headers: http.IncomingHttpHeaders = {};
    const messages: string[] = [];
    const closed = new Promise<{ code: number; reason: string }>((done) => ws.on('close', (code, reason) => done({ code, reason: reason.toString() })));
    ws.on('upgrade', (response) => { headers = response.headers; });
    ws.on('message', (data) => messages.push(data.toString()));
    ws.on('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => { body += chunk; });
      response.on('end', () => reject(Object.assign(new Error(`upgrade refused: ${response.statusCode} ${body.trim()}`), { status: response.statusCode, headers: response.headers, body })));
    });
    ws.on('error', (error) => reject(error));
    ws.on('open', () => resolve({ ws, backend: headers['x-backend'] as string | undefined, headers, messages, closed }));
  });
}

/** The status of a refused upgrade (fails if it was accepted). */
export async function refusedStatus(url: string, options: WebSocket.ClientOptions = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  try {
    const client = await openClient(url, options);
    client.ws.terminate();
  } catch (error) {
    const refused = error as { status?: number; headers?: http.IncomingHttpHeaders; body?: string };
    if (refused.status !== undefined) return { status: refused.status, headers: refused.headers ?? {}, body: refused.body ?? '' };
    throw error;
  }
  throw new Error(`the upgrade to ${url} was accepted`);
}

/** Sends `text` and resolves with the next message the client receives. */
export function roundTrip(client: OpenClient, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: WebSocket.RawData) => {
      client.ws.off('close', onClose);
      resolve(data.toString());
    };
    const onClose = (code: number) => {
      client.ws.off('message', onMessage);
      reject(new Error(`closed (${code}) before an answer to "${text}"`));
    };
    client.ws.once('message', onMessage);
    client.ws.once('close', onClose);
    client.ws.send(text);
  });
}

/** A session over an HTTP/2 extended CONNECT stream (RFC 8441), the `ws` client speaking the frames. */
export async function openHttp2Client(authority: string, path: string, headers: http2.OutgoingHttpHeaders = {}, connectOptions: http2.SecureClientSessionOptions = {}): Promise<{ session: http2.ClientHttp2Session; status: number; responseHeaders: http2.IncomingHttpHeaders; ws: WebSocket | undefined; body: string }> {
  const session = http2.connect(authority, connectOptions);
  session.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', (settings) => (settings.enableConnectProtocol ? resolve() : reject(new Error('the server does not announce SETTINGS_ENABLE_CONNECT_PROTOCOL'))));
    session.once('error', reject);
  });
  const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': authority.startsWith('https:') ? 'https' : 'http', ':path': path, 'sec-websocket-version': '13', ...headers });
  const responseHeaders = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('error', reject);
  });
  const status = Number(responseHeaders[':status']);
  if (status !== 200) {
    let body = '';
    for await (const chunk of stream) body += chunk;
    return { session, status, responseHeaders, ws: undefined, body };
  }
  // ws has no public way to speak over a stream it did not open: a server-side WebSocket, turned client (masking) before setSocket.
  // closeTimeout: the client path sets ws's 30 s default; this one would wait 0 ms for the server's close.
  const ws = new WebSocket(null as unknown as string, undefined, { closeTimeout: 30_000 } as WebSocket.ClientOptions);
  (ws as unknown as { _isServer: boolean })._isServer = false;
  (ws as unknown as { setSocket(socket: unknown, head: Buffer, options: object): void }).setSocket(stream, Buffer.alloc(0), { maxPayload: 256 << 20, allowSynchronousEvents: true });
  return { session, status, responseHeaders, ws, body: '' };
}

/** Opens a raw TCP connection and sends `request`; resolves with the socket and everything up to the end of the response head. */
export function rawUpgrade(port: number, request: string): Promise<{ socket: net.Socket; head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      resolve({ socket, head: received.subarray(0, end).toString('latin1'), rest: received.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.write(request);
  });
}

/** An upgrade request as a raw string, with a valid key and version unless `fields` change them. */
export function upgradeRequest(path: string, fields: Record<string, string | undefined> = {}, method = 'GET'): string {
  const all: Record<string, string | undefined> = {
    host: 'localhost',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'sec-websocket-version': '13',
    ...fields,
  };
  const lines = Object.entries(all).filter(([, value]) => value !== undefined).map(([name, value]) => `${name}: ${value}`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

/** A client frame header (masked unless told otherwise), optionally with a 64-bit length. */
export function frameHeader(opcode: number, length: number, options: { masked?: boolean; fin?: boolean } = {}): Buffer {
  const masked = options.masked ?? true;
  const fin = options.fin ?? true;
  const parts: Buffer[] = [Buffer.from([(fin ? 0x80 : 0) | opcode])];
  if (length < 126) parts.push(Buffer.from([(masked ? 0x80 : 0) | length]));
  else if (length < 65536) {
    const b = Buffer.alloc(3);
    b[0] = (masked ? 0x80 : 0) | 126;
    b.writeUInt16BE(length, 1);
    parts.push(b);
  } else {
    const b = Buffer.alloc(9);
    b[0] = (masked ? 0x80 : 0) | 127;
    b.writeBigUInt64BE(BigInt(length), 1);
    parts.push(b);
  }
  if (masked) parts.push(Buffer.from([1, 2, 3, 4]));
  return Buffer.concat(parts);
}

/** Reads frames from a raw socket (unmasked server frames) until a close frame: resolves with its code. */
export function readCloseFrame(socket: net.Socket, initial: Buffer = Buffer.alloc(0)): Promise<number> {
  return new Promise((resolve, reject) => {
    let buffer = initial;
    const scan = () => {
      while (buffer.length >= 2) {
        const opcode = buffer[0]! & 0x0f;
        const length = buffer[1]! & 0x7f;
        if (length >= 126) return reject(new Error('unexpected long frame from the proxy'));
        if (buffer.length < 2 + length) return;
        if (opcode === 0x8) {
          socket.off('data', onData);
          return resolve(length >= 2 ? buffer.readUInt16BE(2) : 1005);
        }
        buffer = buffer.subarray(2 + length);
      }
    };
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      scan();
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed without a close frame')));
    socket.resume();
    scan();
  });
}
