/**
 * Fakes of the data path's seams, for tests without sockets: the client's
 * stream and an attempt's upstream stream (the contract of
 * src/grpc/streams.ts), an endpoint's connection pool, and a discovery source.
 * Each records what the code under test did to it and lets the test play the
 * other side: the client sending, a backend answering, a pool connecting.
 */
import type { DiscoverySource, DiscoveryUpdate, EndpointAddress } from '../../src/discovery/source.ts';
import type { DownstreamConnection, DownstreamEvents, DownstreamStream, HeaderMap, UpstreamBreak, UpstreamEvents, UpstreamStream } from '../../src/grpc/streams.ts';
import type { EndpointPoolOptions, StreamReceiver, UpstreamPool } from '../../src/upstream/endpoint-pool.ts';

/** The client's side of one RPC. */
export class FakeDownstream implements DownstreamStream {
  readonly connection: DownstreamConnection | undefined = undefined;
  events: DownstreamEvents | undefined;
  /** What the proxy sent the client. */
  responseHeaders: HeaderMap | undefined;
  trailersOnly = false;
  readonly body: Buffer[] = [];
  trailers: HeaderMap | undefined;
  resetCode: number | undefined;
  httpAnswer: { status: number; body: string } | undefined;
  paused = false;
  closed = false;
  /** While true, write() says the client is not reading. */
  blocked = false;
  #requestEnded = false;

  get headersSent(): boolean {
    return this.responseHeaders !== undefined;
  }

  attach(events: DownstreamEvents): void {
    if (this.events) throw new Error('attach() called twice');
    this.events = events;
    if (this.#requestEnded) events.onRequestEnd();
  }

  respond(headers: HeaderMap, endStream: boolean): void {
    if (this.closed || this.responseHeaders) return;
    this.responseHeaders = headers;
    this.trailersOnly = endStream;
    if (endStream) this.#close();
  }

  write(chunk: Buffer): boolean {
    if (this.closed) return true;
    this.body.push(chunk);
    return !this.blocked;
  }

  end(trailers: HeaderMap): void {
    if (this.closed) return;
    this.trailers = trailers;
    this.#close();
  }

  answerHttp(status: number, body: string): void {
    this.httpAnswer = { status, body };
    this.#close();
  }

  reset(code: number): void {
    if (this.closed) return;
    this.resetCode = code;
    this.#close();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  // The client's actions.

  send(chunk: Buffer): void {
    this.events?.onRequestData(chunk);
  }

  /** Half-close; before attach(), it is reported at attach (as a stream that ended in its first read). */
  endRequest(): void {
    this.#requestEnded = true;
    this.events?.onRequestEnd();
  }

  /** The client resets the stream. */
  cancel(): void {
    if (this.closed) return;
    this.resetCode = 0x8;
    this.#close();
  }

  /** The client reads again after `blocked`. */
  drain(): void {
    this.blocked = false;
    this.events?.onResponseDrain();
  }

  /** The status the client received: from trailers-only headers or trailers. */
  get grpcStatus(): number | undefined {
    const source = this.trailersOnly ? this.responseHeaders : this.trailers;
    return source?.['grpc-status'] === undefined ? undefined : Number(source['grpc-status']);
  }

  get grpcMessage(): string | undefined {
    const source = this.trailersOnly ? this.responseHeaders : this.trailers;
    const message = source?.['grpc-message'];
    return message === undefined ? undefined : decodeURIComponent(String(message));
  }

  #close(): void {
    if (this.closed) return;
    this.closed = true;
    // Node reports the close after the current task; so does the fake.
    queueMicrotask(() => this.events?.onDownstreamClose());
  }
}

/** One attempt's stream on a backend. */
export class FakeUpstream implements UpstreamStream {
  readonly headers: HeaderMap;
  events: UpstreamEvents | undefined;
  readonly written: Buffer[] = [];
  ended = false;
  cancelled = false;
  paused = false;
  connectionLost = false;
  /** While true, write() says the backend is not reading. */
  blocked = false;
  #closed = false;

  constructor(headers: HeaderMap) {
    this.headers = headers;
  }

  attach(events: UpstreamEvents): void {
    this.events = events;
  }

  write(chunk: Buffer): boolean {
    this.written.push(chunk);
    return !this.blocked;
  }

  end(): void {
    this.ended = true;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  cancel(): void {
    if (this.#closed) return;
    this.cancelled = true;
    this.#closed = true;
  }

  get requestBody(): Buffer {
    return Buffer.concat(this.written);
  }

  // The backend's actions.

  respond(headers: HeaderMap = { ':status': 200, 'content-type': 'application/grpc' }): void {
    this.events!.onResponse(headers, false);
  }

  /** A trailers-only answer, then the end of the stream. */
  answer(status: number, message?: string): void {
    const headers: HeaderMap = { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(status) };
    if (message) headers['grpc-message'] = message;
    this.events!.onResponse(headers, true);
    this.#finish();
  }

  data(chunk: Buffer): void {
    this.events!.onResponseData(chunk);
  }

  /** Trailers with a status, then the end of the stream. */
  trailers(status: number, extra: HeaderMap = {}): void {
    this.events!.onTrailers({ 'grpc-status': String(status), ...extra });
    this.#finish();
  }

  /** The stream breaks before its response ended. */
  break(broken: Partial<UpstreamBreak> = {}): void {
    if (this.#closed) return;
    this.#closed = true;
    this.events!.onUpstreamClose({ rstCode: 0x2, refused: false, connectionError: undefined, ...broken });
  }

  drain(): void {
    this.blocked = false;
    this.events!.onRequestDrain();
  }

  #finish(): void {
    this.events!.onResponseEnd();
    if (this.#closed) return;
    this.#closed = true;
    this.events!.onUpstreamClose(undefined);
  }
}

/** A pool whose connects the test completes or fails; every opened stream is a FakeUpstream. */
export class FakePool implements UpstreamPool {
  readonly options: EndpointPoolOptions;
  inBackoff = false;
  connectionCount = 0;
  closed = false;
  /** Opens waiting for the test to answer, oldest first. */
  readonly waiting: { headers: HeaderMap; receiver: StreamReceiver }[] = [];
  readonly opened: FakeUpstream[] = [];
  /** Answer opens at once with a stream (the default), or leave them waiting. */
  autoAccept = true;

  /** Also told of every stream opened, to keep the order across pools. */
  readonly #log: FakeUpstream[] | undefined;

  constructor(options: EndpointPoolOptions, log?: FakeUpstream[]) {
    this.options = options;
    this.#log = log;
  }

  get key(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  open(headers: HeaderMap, receiver: StreamReceiver): void {
    if (this.closed) return receiver.onStream(new Error('pool closed'), undefined);
    this.waiting.push({ headers, receiver });
    if (this.autoAccept) this.accept();
  }

  /** Hands the oldest waiting open its stream. */
  accept(): FakeUpstream {
    const next = this.waiting.shift();
    if (!next) throw new Error(`nothing is waiting on ${this.key}`);
    const stream = new FakeUpstream({ ...next.headers });
    this.opened.push(stream);
    this.#log?.push(stream);
    next.receiver.onStream(undefined, stream);
    return stream;
  }

  /** Fails the oldest waiting open. */
  refuse(error: Error): void {
    const next = this.waiting.shift();
    if (!next) throw new Error(`nothing is waiting on ${this.key}`);
    next.receiver.onStream(error, undefined);
  }

  get last(): FakeUpstream {
    const stream = this.opened.at(-1);
    if (!stream) throw new Error(`no stream was opened on ${this.key}`);
    return stream;
  }

  close(): void {
    this.closed = true;
  }
}

/** Pools made by a cluster under test, by endpoint key. */
export class FakePools {
  readonly byKey = new Map<string, FakePool>();
  /** Every stream opened on any pool, in the order they were opened. */
  readonly opened: FakeUpstream[] = [];
  readonly create = (options: EndpointPoolOptions): FakePool => {
    const pool = new FakePool(options, this.opened);
    this.byKey.set(pool.key, pool);
    return pool;
  };

  get(key: string): FakePool {
    const pool = this.byKey.get(key);
    if (!pool) throw new Error(`no pool for ${key}`);
    return pool;
  }
}

/** A discovery source the test feeds. */
export class FakeDiscovery implements DiscoverySource {
  #listener: ((update: DiscoveryUpdate) => void) | undefined;
  refreshes = 0;
  closed = false;

  start(listener: (update: DiscoveryUpdate) => void): void {
    this.#listener = listener;
  }

  set(endpoints: readonly EndpointAddress[]): void {
    this.#listener?.({ type: 'reset', endpoints });
  }

  fail(error: Error): void {
    this.#listener?.({ type: 'error', error });
  }

  refresh(): void {
    this.refreshes++;
  }

  close(): void {
    this.closed = true;
  }
}
