/**
 * Where browser protocols enter: HTTP/2 streams that are not plain gRPC, and
 * HTTP/1.1 requests. A gRPC-Web or Connect call is wrapped in a translating
 * stream and handed to the RPC handler like any gRPC call, so routes,
 * balancing, retries, authorization, rate limits, deadlines, metrics, the
 * access log and tracing apply unchanged. The proxy answers CORS preflights
 * itself. Which protocols a call may use, and its CORS policy, are its
 * route's `web` settings, else its listener's.
 *
 * A gRPC request pays one content-type check for all of this (isPlainGrpc).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DescriptorSets, MethodCodec } from '../config/descriptor-types.ts';
import type { CorsPolicyConfig, ListenerWebConfig, WebProtocolName } from '../config/web-schema.ts';
import type { DownstreamEvents, DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import type { StreamHandler } from '../listener/listener.ts';
import type { Serving } from '../proxy/rpc-handler.ts';
import { ConnectStreamStream } from './connect-stream-stream.ts';
import { ConnectUnaryStream } from './connect-unary-stream.ts';
import { corsPolicy } from './cors.ts';
import { GrpcWebStream } from './grpc-web-stream.ts';
import { Http1Stream, http1Connection, http1Headers } from './http1-stream.ts';
import { classifyWebCall, preflightOf, protocolName, toGrpcRequestHeaders, type Preflight, type WebCall } from './web-call.ts';
import type { WebStream } from './web-stream.ts';

export interface WebHandlerDependencies {
  /** The RPC handler (src/proxy/rpc-handler.ts): every call goes through it, translated or not. */
  readonly rpc: StreamHandler;
  /** The snapshot in force (read once per call, as the RPC handler does). */
  serving(): Serving;
  /** The config's descriptor sets, for Connect's JSON; undefined without any. */
  descriptors(): DescriptorSets | undefined;
}

export interface WebHandler {
  /** Every HTTP/2 stream: plain gRPC goes straight to the RPC handler, the rest is looked at here. */
  readonly stream: StreamHandler;
  /** An HTTP/1.1 request: true when taken (a browser protocol or a preflight), false for the listener's default answer. */
  request(request: IncomingMessage, response: ServerResponse, listener: string): boolean;
}

export function createWebHandler(deps: WebHandlerDependencies): WebHandler {
  const serveWeb: StreamHandler = (stream, headers, listener) => {
    const serving = deps.serving();
    if (!webPossible(serving, listener)) return deps.rpc(stream, headers, listener);
    const preflight = preflightOf(headers);
    if (preflight) return answerPreflight(stream, preflight, corsOf(serving, listener, headers));
    const call = classifyWebCall(headers);
    if (!call || (call.kind !== 'grpc-web' && call.codec !== 'proto' && call.codec !== 'json')) return deps.rpc(stream, headers, listener);
    serveCall(deps, serving, stream, headers, listener, call);
  };
  return {
    stream: (stream, headers, listener) => (isPlainGrpc(headers) ? deps.rpc(stream, headers, listener) : serveWeb(stream, headers, listener)),
    request(request, response, listener) {
      const headers = http1Headers(request);
      if (preflightOf(headers) === undefined && classifyWebCall(headers) === undefined) return false;
      const config = deps.serving().listeners.get(listener);
      if (!config) return false;
      serveWeb(new Http1Stream(request, response, http1Connection(request.socket, config)), headers, listener);
      return true;
    },
  };
}

/** `application/grpc`, `+format` or `;params`, POSTed: gRPC itself (not `application/grpc-web…`). */
function isPlainGrpc(headers: HeaderMap): boolean {
  const contentType = headers['content-type'];
  return headers[':method'] === 'POST' && typeof contentType === 'string' && contentType.startsWith('application/grpc') && contentType.charCodeAt(16) !== 0x2d /* - */;
}

function serveCall(deps: WebHandlerDependencies, serving: Serving, stream: DownstreamStream, headers: HeaderMap, listener: string, call: WebCall): void {
  const origin = headers.origin;
  const method = headers[':method'];
  const contentType = headers['content-type'];
  const requestPath = headers[':path'];
  const path = typeof requestPath === 'string' ? withoutQuery(requestPath) : '';
  const codec = call.kind !== 'grpc-web' && call.codec === 'json' ? deps.descriptors()?.method(path) : undefined;
  if (call.kind === 'connect-unary' && call.get !== undefined && deps.descriptors()?.method(path)?.noSideEffects !== true) {
    // A GET needs no preflight, so a page of any origin can make a browser send one: only for methods that change nothing.
    const error = { code: 'unimplemented', message: 'GET is only for methods that a descriptor set marks idempotency_level = NO_SIDE_EFFECTS (web.descriptor_sets); POST this call' };
    return answerDirectly(stream, { ':status': 405, allow: 'POST', 'content-type': 'application/json' }, JSON.stringify(error));
  }
  // Translated first, so the route is found on the headers the RPC handler will see.
  toGrpcRequestHeaders(call, headers, codec !== undefined);
  const route = serving.routes.find(path, headers);
  const listenerWeb = serving.listeners.get(listener)?.web;
  const protocols = route?.web?.protocols ?? listenerWeb?.protocols ?? NONE;
  if (!protocols.includes(protocolName(call))) {
    // Not taken here: restored, the request is answered as any non-gRPC one is (HTTP 415).
    headers[':method'] = method;
    headers['content-type'] = contentType;
    headers[':path'] = requestPath;
    return deps.rpc(stream, headers, listener);
  }
  const cors = route?.web?.cors ?? listenerWeb?.cors;
  const extra = cors !== undefined && typeof origin === 'string' ? corsPolicy(cors).responseHeaders(origin) : undefined;
  deps.rpc(translatingStream(stream, call, codec, extra), headers, listener);
}

function translatingStream(stream: DownstreamStream, call: WebCall, codec: MethodCodec | undefined, extra: Record<string, string> | undefined): WebStream {
  switch (call.kind) {
    case 'grpc-web': return new GrpcWebStream(stream, call, extra);
    case 'connect-unary': return new ConnectUnaryStream(stream, call, codec, extra);
    case 'connect-stream': return new ConnectStreamStream(stream, call, codec, extra);
  }
}

const NONE: readonly WebProtocolName[] = [];

/** The CORS policy of the route a preflight asks about (its route's, else its listener's). */
function corsOf(serving: Serving, listener: string, headers: HeaderMap): CorsPolicyConfig | undefined {
  const path = headers[':path'];
  const route = serving.routes.find(typeof path === 'string' ? withoutQuery(path) : '', headers);
  return route?.web?.cors ?? serving.listeners.get(listener)?.web.cors;
}

/** The proxy answers preflights itself: they never reach a backend, nor the RPC path's records. */
function answerPreflight(stream: DownstreamStream, preflight: Preflight, cors: CorsPolicyConfig | undefined): void {
  const answer = cors === undefined
    ? { status: 403, headers: {}, refusal: 'no CORS policy covers this route' }
    : corsPolicy(cors).preflight(preflight.origin, preflight.method, preflight.headers);
  if (answer.refusal === '') return answerDirectly(stream, { ':status': answer.status, ...answer.headers }, '');
  answerDirectly(stream, { ':status': answer.status, ...answer.headers, 'content-type': 'text/plain; charset=utf-8' }, `switchyard: CORS preflight refused: ${answer.refusal}\n`);
}

/** An answer of the proxy's own, to what is not an RPC (a preflight, a GET refused): no backend, no RPC record. */
function answerDirectly(stream: DownstreamStream, headers: HeaderMap, text: string): void {
  stream.attach(IGNORED);
  stream.resume();
  const body = Buffer.from(text);
  headers['content-length'] = String(body.length);
  if (body.length === 0) return stream.respond(headers, true);
  stream.respond(headers, false);
  stream.write(body);
  stream.end({});
}

/** Whether any browser protocol may be served on `listener` in this snapshot; when none, nothing here changes what a request gets. */
function webPossible(serving: Serving, listener: string): boolean {
  let possible = POSSIBLE.get(serving);
  if (possible === undefined) {
    possible = serving.routes.routes.some((route) => route.web !== undefined);
    POSSIBLE.set(serving, possible);
  }
  const web: ListenerWebConfig | undefined = serving.listeners.get(listener)?.web;
  return possible || (web !== undefined && (web.protocols.length > 0 || web.cors !== undefined));
}

const POSSIBLE = new WeakMap<Serving, boolean>();

function withoutQuery(path: string): string {
  const question = path.indexOf('?');
  return question < 0 ? path : path.slice(0, question);
}

/** The events of a preflight's stream: nothing in them matters. */
const IGNORED: DownstreamEvents = {
  onRequestData() {},
  onRequestEnd() {},
  onResponseDrain() {},
  onDownstreamClose() {},
  onCut() {},
  onMalformedRequest() {},
};
