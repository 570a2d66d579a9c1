/**
 * Which browser protocol a request speaks, told from its method, content
 * type, Accept header and query; and its headers rewritten as the gRPC
 * request the backend gets. Pure.
 *
 * - gRPC-Web (grpc's PROTOCOL-WEB.md): POST `application/grpc-web[+codec]`
 *   (binary) or `application/grpc-web-text[+codec]` (base64); the response is
 *   text when `Accept` asks for `application/grpc-web-text`.
 * - Connect (connectrpc.com/docs/protocol): unary POST `application/proto` or
 *   `application/json`, unary GET with `encoding` and `message` in the query,
 *   streams POST `application/connect+proto` or `+json`.
 * - A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method.
 */
import type { WebProtocolName } from '../config/web-schema.ts';
import type { HeaderMap, RpcProtocol } from '../grpc/streams.ts';
import { formatGrpcTimeout } from '../grpc/timeout.ts';

export type WebCall = GrpcWebCall | ConnectUnaryCall | ConnectStreamCall;

export interface GrpcWebCall {
  readonly kind: 'grpc-web';
  /** The request body is base64. */
  readonly textRequest: boolean;
  /** The response body is to be base64. */
  readonly textResponse: boolean;
  /** `+proto`, `+json`, or '' (proto). */
  readonly subtype: string;
}

export interface ConnectUnaryCall {
  readonly kind: 'connect-unary';
  /** `proto`, `json`, or another the proxy does not take (answered 415). */
  readonly codec: string;
  /** How the request body is compressed (`identity`, `gzip`, or another: unimplemented). */
  readonly compression: string;
  /** A GET: the request message from the query (undefined for POST). */
  readonly get: ConnectGet | undefined;
}

export interface ConnectGet {
  /** The message's bytes, or what is wrong with the query. */
  readonly message: Buffer | string;
}

export interface ConnectStreamCall {
  readonly kind: 'connect-stream';
  readonly codec: string;
  readonly compression: string;
}

/** The config's name of the protocol a call speaks. */
export function protocolName(call: WebCall): WebProtocolName {
  return call.kind === 'grpc-web' ? 'grpc_web' : 'connect';
}

/** The protocol as the RPC record names it. */
export function rpcProtocol(call: WebCall): RpcProtocol {
  return call.kind === 'grpc-web' ? 'grpc-web' : 'connect';
}

/** A CORS preflight: its origin, the method and headers it asks for. */
export interface Preflight {
  readonly origin: string;
  readonly method: string;
  readonly headers: string | undefined;
}

export function preflightOf(headers: HeaderMap): Preflight | undefined {
  if (headers[':method'] !== 'OPTIONS') return undefined;
  const origin = headers.origin;
  const method = headers['access-control-request-method'];
  if (typeof origin !== 'string' || typeof method !== 'string') return undefined;
  const requested = headers['access-control-request-headers'];
  return { origin, method, headers: Array.isArray(requested) ? requested.join(',') : typeof requested === 'string' ? requested : undefined };
}

/** The browser protocol of a request, or undefined when it speaks none (gRPC itself, or anything else). */
export function classifyWebCall(headers: HeaderMap): WebCall | undefined {
  const method = headers[':method'];
  if (method === 'GET') return connectGet(headers);
  if (method !== 'POST') return undefined;
  const contentType = headers['content-type'];
  if (typeof contentType !== 'string') return undefined;
  const type = mediaType(contentType);
  if (type.startsWith('application/grpc-web')) {
    const text = type.startsWith('application/grpc-web-text');
    const subtype = type.slice(text ? 25 : 20);
    if (subtype !== '' && !subtype.startsWith('+')) return undefined;
    return { kind: 'grpc-web', textRequest: text, textResponse: wantsText(headers.accept, text), subtype };
  }
  if (type.startsWith('application/connect+')) {
    return { kind: 'connect-stream', codec: type.slice(20), compression: single(headers['connect-content-encoding']) ?? 'identity' };
  }
  if (type === 'application/proto' || type === 'application/json') {
    return { kind: 'connect-unary', codec: type.slice(12), compression: single(headers['content-encoding']) ?? 'identity', get: undefined };
  }
  return undefined;
}

/** The media type, lower-cased, without parameters (`application/json; charset=utf-8` → `application/json`). */
function mediaType(contentType: string): string {
  const semicolon = contentType.indexOf(';');
  return (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

/** Text responses when Accept names the text type; when it names only the binary one, binary; else as the request came. */
function wantsText(accept: HeaderMap[string], textRequest: boolean): boolean {
  const value = Array.isArray(accept) ? accept.join(',') : typeof accept === 'string' ? accept : '';
  if (value.includes('application/grpc-web-text')) return true;
  if (value.includes('application/grpc-web')) return false;
  return textRequest;
}

/** A Connect GET: `?encoding=…&message=…` (`base64=1`, `compression=…`, `connect=v1` optional). */
function connectGet(headers: HeaderMap): ConnectUnaryCall | undefined {
  const path = headers[':path'];
  if (typeof path !== 'string') return undefined;
  const question = path.indexOf('?');
  if (question < 0) return undefined;
  const query = new URLSearchParams(path.slice(question + 1));
  const encoding = query.get('encoding');
  const raw = query.get('message');
  if (encoding === null || (raw === null && query.get('connect') !== 'v1')) return undefined;
  let message: Buffer | string;
  if (raw === null) message = 'the query has no message parameter';
  else if (query.get('base64') === '1') {
    // RFC 4648 §5 (URL-safe), padding optional.
    message = /^[A-Za-z0-9_-]*={0,2}$/.test(raw) ? Buffer.from(raw, 'base64url') : 'the message parameter is not URL-safe base64';
  } else {
    message = Buffer.from(raw, 'utf8');
  }
  return { kind: 'connect-unary', codec: encoding.toLowerCase(), compression: query.get('compression') ?? 'identity', get: { message } };
}

function single(value: HeaderMap[string]): string | undefined {
  return typeof value === 'string' ? value.trim().toLowerCase() : Array.isArray(value) ? value[0]?.trim().toLowerCase() : undefined;
}

/** Headers of HTTP/1.1 connections, and the browser protocols' own, that the gRPC request must not carry. */
const DROPPED_HEADERS = [
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'content-length',
  'connect-protocol-version', 'connect-timeout-ms', 'connect-content-encoding', 'connect-accept-encoding',
];

/**
 * Rewrites `headers` (the request's, which belong to this call) as a gRPC request's: POST to the method's
 * path, `content-type: application/grpc…`, `te: trailers`, no content-length, Connect's timeout as
 * `grpc-timeout`, its compression as `grpc-encoding`. Other metadata passes as it came.
 */
export function toGrpcRequestHeaders(call: WebCall, headers: HeaderMap, transcoded: boolean): HeaderMap {
  const connectTimeout = headers['connect-timeout-ms'];
  // Removed by setting them undefined (which no one sends), as src/security does: a delete would turn the map
  // into a slow dictionary for everything after (the forwarding rules, the HPACK encoder).
  for (const name of DROPPED_HEADERS) if (headers[name] !== undefined) headers[name] = undefined;
  headers.te = 'trailers';
  if (call.kind === 'grpc-web') {
    headers['content-type'] = `application/grpc${call.subtype}`;
    return headers;
  }
  if (call.kind === 'connect-unary') {
    if (headers['content-encoding'] !== undefined) headers['content-encoding'] = undefined;
    if (headers['accept-encoding'] !== undefined) headers['accept-encoding'] = undefined;
    if (call.get !== undefined) {
      headers[':method'] = 'POST';
      const path = headers[':path'] as string;
      headers[':path'] = path.slice(0, path.indexOf('?'));
    }
  }
  // JSON the proxy transcodes reaches the backend as protobuf; untranscoded JSON goes as gRPC's JSON codec.
  headers['content-type'] = transcoded || call.codec === 'proto' ? 'application/grpc+proto' : `application/grpc+${call.codec}`;
  // Compressed protobuf is passed on compressed (the backend decompresses); JSON is decompressed here to be transcoded.
  if (call.compression !== 'identity' && !transcoded) headers['grpc-encoding'] = call.compression;
  // Responses come back uncompressed, which the proxy can pass on or transcode as they are.
  headers['grpc-accept-encoding'] = 'identity';
  if (typeof connectTimeout === 'string') headers['grpc-timeout'] = grpcTimeoutOf(connectTimeout);
  return headers;
}

/** Connect's timeout (up to 10 digits of ms) as grpc-timeout (8 digits and a unit); a malformed one stays malformed, to be refused. */
function grpcTimeoutOf(milliseconds: string): string {
  return /^\d{1,10}$/.test(milliseconds) ? formatGrpcTimeout(Number(milliseconds)) : `${milliseconds} (connect-timeout-ms)`;
}
