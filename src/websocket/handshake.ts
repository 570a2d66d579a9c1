/**
 * The opening handshake, both sides (RFC 6455 §4, RFC 8441 §4-5). Pure
 * functions: what a client's request must carry, and whether a backend's
 * 101 answers the key it was sent.
 *
 * A client over HTTP/1.1 asks with GET, `Upgrade: websocket`,
 * `Connection: Upgrade`, a `Sec-WebSocket-Key` of 16 random bytes in base64
 * and `Sec-WebSocket-Version: 13`. Over HTTP/2 it sends an extended CONNECT
 * (`:method CONNECT`, `:protocol websocket`) with the version and no key:
 * the proxy makes the key for the backend and checks the accept itself.
 */
import { cryptoModule } from '../builtins.ts';

/** RFC 6455 §1.3: appended to the key before hashing. */
const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** 16 bytes in base64: 22 characters and the padding (as leniently as the `ws` server reads it). */
const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;

/** Request headers as Node's HTTP/1.1 parser gives them (lower-case names), or an HTTP/2 header map. */
export type RequestHeaders = Readonly<Record<string, string | string[] | number | undefined>>;

/** Why a handshake is refused: the HTTP status, the reason for logs and metrics, and any header the answer needs. */
export interface Refusal {
  readonly status: number;
  /** Stable label (metrics `result`, access log). */
  readonly result: string;
  readonly message: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** The key a valid HTTP/1.1 handshake carries; a Refusal otherwise. */
export function checkHttp1Handshake(method: string, headers: RequestHeaders): { key: string } | Refusal {
  if (!hasToken(headers['upgrade'], 'websocket')) return refuse(400, 'bad_handshake', 'expected "Upgrade: websocket"');
  if (method !== 'GET') return { status: 405, result: 'method_not_allowed', message: `a WebSocket handshake is a GET, not ${method}`, headers: { allow: 'GET' } };
  if (!hasToken(headers['connection'], 'upgrade')) return refuse(400, 'bad_handshake', 'expected "Connection: Upgrade"');
  const version = checkVersion(headers);
  if (version) return version;
  const key = single(headers['sec-websocket-key']);
  if (key === undefined || !KEY_PATTERN.test(key)) return refuse(400, 'bad_handshake', 'expected a Sec-WebSocket-Key of 16 bytes in base64');
  return { key };
}

/** Whether an HTTP/2 extended CONNECT asks for a WebSocket (RFC 8441 §5); undefined when it does. */
export function checkHttp2Handshake(headers: RequestHeaders): Refusal | undefined {
  if (headers[':protocol'] !== 'websocket') return refuse(400, 'bad_handshake', `extended CONNECT for "${String(headers[':protocol'])}": only :protocol websocket is served`);
  return checkVersion(headers);
}

/** Sec-WebSocket-Version must be 13; otherwise 426 naming it (§4.4). */
function checkVersion(headers: RequestHeaders): Refusal | undefined {
  if (single(headers['sec-websocket-version'])?.trim() === '13') return undefined;
  return { status: 426, result: 'bad_version', message: 'Sec-WebSocket-Version 13 is the version served', headers: { 'sec-websocket-version': '13' } };
}

/** The Sec-WebSocket-Accept that answers `key` (§4.2.2). */
export function acceptFor(key: string): string {
  return cryptoModule().createHash('sha1').update(key + ACCEPT_GUID).digest('base64');
}

/** A fresh Sec-WebSocket-Key, for a backend reached on behalf of an HTTP/2 client. */
export function newKey(): string {
  return cryptoModule().randomBytes(16).toString('base64');
}

/** What the backend's 101 negotiated: the subprotocol and extensions the client will be told of. */
export interface Negotiated {
  readonly protocol: string | undefined;
  readonly extensions: string | undefined;
}

/**
 * Checks a backend's 101 (§4.1, the client's checks): `Upgrade: websocket`, `Connection: Upgrade`, the
 * accept for the key it was sent, and a subprotocol and extensions among those the client offered.
 * Returns what was negotiated, or why the answer is not a WebSocket handshake (a 502 to the client).
 */
export function checkBackendAccept(headers: RequestHeaders, key: string, offered: RequestHeaders): Negotiated | string {
  if (!hasToken(headers['upgrade'], 'websocket')) return 'the backend\'s 101 lacks "Upgrade: websocket"';
  if (!hasToken(headers['connection'], 'upgrade')) return 'the backend\'s 101 lacks "Connection: Upgrade"';
  if (single(headers['sec-websocket-accept'])?.trim() !== acceptFor(key)) return 'the backend\'s Sec-WebSocket-Accept does not answer the key';
  const protocol = single(headers['sec-websocket-protocol'])?.trim();
  if (protocol !== undefined && !tokens(offered['sec-websocket-protocol']).includes(protocol.toLowerCase())) {
    return `the backend chose subprotocol "${protocol}", which the client did not offer`;
  }
  const extensions = joined(headers['sec-websocket-extensions']);
  if (extensions !== undefined) {
    const offeredNames = new Set(extensionNames(joined(offered['sec-websocket-extensions'])));
    const unknown = extensionNames(extensions).find((name) => !offeredNames.has(name));
    if (unknown !== undefined) return `the backend chose extension "${unknown}", which the client did not offer`;
  }
  return { protocol, extensions };
}

function refuse(status: number, result: string, message: string): Refusal {
  return { status, result, message };
}

/** The comma-separated tokens of a header (all of its lines), lower-case. */
function tokens(value: RequestHeaders[string]): string[] {
  const text = joined(value);
  if (text === undefined) return [];
  return text.split(',').map((token) => token.trim().toLowerCase()).filter((token) => token !== '');
}

function hasToken(value: RequestHeaders[string], token: string): boolean {
  return tokens(value).includes(token);
}

function single(value: RequestHeaders[string]): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : String(value);
}

function joined(value: RequestHeaders[string]): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

/** `permessage-deflate; client_max_window_bits, x-foo` → ['permessage-deflate', 'x-foo']. */
function extensionNames(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value.split(',').map((part) => part.split(';')[0]!.trim().toLowerCase()).filter((name) => name !== '');
}
