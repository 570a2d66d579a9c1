/**
 * The Echo service (echo.proto): a real @grpc/grpc-js server used by the demo
 * and by the tests. Each response carries the backend's name.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { HealthImplementation } from 'grpc-health-check';
import { fileURLToPath } from 'node:url';

export const ECHO_PROTO = fileURLToPath(new URL('./echo.proto', import.meta.url));
export const ECHO_SERVICE = 'switchyard.demo.v1.Echo';

export interface EchoRequest {
  payload?: Buffer;
  delay_ms?: number;
  fail_code?: number;
  fail_message?: string;
  count?: number;
  response_bytes?: number;
}

export interface EchoResponse {
  payload: Buffer;
  backend: string;
  sequence: number;
  received_bytes: string | number;
  metadata: string[];
}

/** The generated Echo client, typed. */
export interface EchoClient extends grpc.Client {
  Unary(request: EchoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<EchoResponse>): grpc.ClientUnaryCall;
  ClientStream(callback: grpc.requestCallback<EchoResponse>): grpc.ClientWritableStream<EchoRequest>;
  ClientStream(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<EchoResponse>): grpc.ClientWritableStream<EchoRequest>;
  ServerStream(request: EchoRequest, metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<EchoResponse>;
  Bidi(metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoResponse>;
}

type EchoClientConstructor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => EchoClient;

let cachedDefinition: grpc.GrpcObject | undefined;

/** Loads echo.proto once; returns the package object holding the Echo client constructor. */
export function loadEchoPackage(): { Echo: EchoClientConstructor & { service: grpc.ServiceDefinition } } {
  if (!cachedDefinition) {
    const definition = protoLoader.loadSync(ECHO_PROTO, { longs: String, defaults: true, keepCase: true });
    cachedDefinition = grpc.loadPackageDefinition(definition);
  }
  const demo = (cachedDefinition.switchyard as grpc.GrpcObject).demo as grpc.GrpcObject;
  return (demo.v1 as unknown) as { Echo: EchoClientConstructor & { service: grpc.ServiceDefinition } };
}

/** Behaviour a test can change while the server runs. */
export interface EchoBehaviour {
  /** Extra delay added to every response, ms (to make a backend "slow"). */
  extraDelayMs: number;
  /** Every n-th unary call fails with UNAVAILABLE (after sending headers, so the status is in trailers); 0: never. */
  unavailableEvery: number;
}

export interface EchoServerHandle {
  readonly name: string;
  readonly port: number;
  readonly server: grpc.Server;
  readonly behaviour: EchoBehaviour;
  /** RPCs started on this backend, by method name. */
  readonly calls: Map<string, number>;
  /** Streams currently open on this backend. */
  active: number;
  /** Server-stream messages written so far (a writer that respects flow control stalls when readers do). */
  streamedMessages: number;
  /** Sets the grpc.health.v1 status of "" and of the Echo service. Throws unless started with `health: true`. */
  setServing(serving: boolean): void;
  close(): Promise<void>;
}

export interface EchoServerOptions {
  name: string;
  host?: string;
  port?: number;
  credentials?: grpc.ServerCredentials;
  serverOptions?: grpc.ServerOptions;
  /** Also serve the standard health service (grpc.health.v1.Health), SERVING until setServing(false). */
  health?: boolean;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (ms <= 0) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });

function describeMetadata(metadata: grpc.Metadata, deadline?: grpc.Deadline): string[] {
  const lines: string[] = [];
  // The deadline the backend was given, so tests can check that the proxy forwarded it.
  if (deadline instanceof Date || (typeof deadline === 'number' && Number.isFinite(deadline))) {
    lines.push(`deadline-remaining-ms=${Number(deadline) - Date.now()}`);
  }
  for (const [key, values] of Object.entries(metadata.getMap())) {
    const value = Buffer.isBuffer(values) ? `bin:${values.toString('base64')}` : String(values);
    lines.push(`${key}=${value}`);
  }
  return lines.sort();
}

function payloadFor(request: EchoRequest): Buffer {
  return request.response_bytes ? Buffer.alloc(request.response_bytes, 0x61) : (request.payload ?? Buffer.alloc(0));
}

function failure(request: EchoRequest): Partial<grpc.StatusObject> | undefined {
  if (!request.fail_code) return undefined;
  const metadata = new grpc.Metadata();
  metadata.set('x-failure-detail', 'requested');
  return { code: request.fail_code, details: request.fail_message ?? '', metadata };
}

/** Starts an Echo server on `host:port` (port 0 by default) and resolves once it listens. */
export async function startEchoServer(options: EchoServerOptions): Promise<EchoServerHandle> {
  const { Echo } = loadEchoPackage();
  const server = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1, ...options.serverOptions });
  const behaviour: EchoBehaviour = { extraDelayMs: 0, unavailableEvery: 0 };
  const calls = new Map<string, number>();
  const count = (method: string) => calls.set(method, (calls.get(method) ?? 0) + 1);
  const trailer = () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-backend', options.name);
    return metadata;
  };
  const health = options.health ? new HealthImplementation({ '': 'SERVING', [ECHO_SERVICE]: 'SERVING' }) : undefined;
  health?.addToServer(server);
  const setServing = (serving: boolean) => {
    if (!health) throw new Error(`echo server ${options.name} was started without health: true`);
    for (const service of ['', ECHO_SERVICE]) health.setStatus(service, serving ? 'SERVING' : 'NOT_SERVING');
  };
  const handle: EchoServerHandle = { name: options.name, port: 0, server, behaviour, calls, active: 0, streamedMessages: 0, setServing, close: async () => {} };
  const track = (call: { on(event: 'close' | 'finish' | 'cancelled', cb: () => void): unknown }) => {
    handle.active++;
    let done = false;
    const end = () => { if (!done) { done = true; handle.active--; } };
    call.on('close', end);
    call.on('finish', end);
    call.on('cancelled', end);
  };

  server.addService(Echo.service, {
    Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoResponse>, callback: grpc.sendUnaryData<EchoResponse>) => {
      count('Unary');
      handle.active++;
      const request = call.request;
      const headers = new grpc.Metadata();
      headers.set('x-backend', options.name);
      call.sendMetadata(headers);
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      void sleep((request.delay_ms ?? 0) + behaviour.extraDelayMs, abort.signal).then(() => {
        handle.active--;
        if (abort.signal.aborted) return;
        if (behaviour.unavailableEvery > 0 && (calls.get('Unary') ?? 0) % behaviour.unavailableEvery === 0) {
          return callback({ code: grpc.status.UNAVAILABLE, details: `${options.name} is shedding load` } as grpc.ServiceError);
        }
        const failed = failure(request);
        if (failed) return callback(failed as grpc.ServiceError);
        callback(null, { payload: payloadFor(request), backend: options.name, sequence: 0, received_bytes: 0, metadata: describeMetadata(call.metadata, call.getDeadline()) }, trailer());
      });
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoResponse>, callback: grpc.sendUnaryData<EchoResponse>) => {
      count('ClientStream');
      track(call);
      let received = 0;
      let messages = 0;
      let last: EchoRequest = {};
      call.on('data', (request: EchoRequest) => { received += request.payload?.length ?? 0; messages++; last = request; });
      call.on('end', () => {
        const failed = failure(last);
        if (failed) return callback(failed as grpc.ServiceError);
        callback(null, { payload: Buffer.alloc(0), backend: options.name, sequence: messages, received_bytes: received, metadata: describeMetadata(call.metadata) }, trailer());
      });
    },
    ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoResponse>) => {
      count('ServerStream');
      track(call);
      const request = call.request;
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      void (async () => {
        const total = request.count ?? 0;
        const payload = payloadFor(request);
        for (let sequence = 0; sequence < total && !abort.signal.aborted; sequence++) {
          const delay = (request.delay_ms ?? 0) + behaviour.extraDelayMs;
          if (delay > 0) await sleep(delay, abort.signal);
          handle.streamedMessages++;
          const flushed = call.write({ payload, backend: options.name, sequence, received_bytes: 0, metadata: sequence === 0 ? describeMetadata(call.metadata) : [] });
          // Respect flow control: a slow reader must slow this writer down.
          if (!flushed) await new Promise<void>((resolve) => { call.once('drain', resolve); abort.signal.addEventListener('abort', () => resolve(), { once: true }); });
        }
        if (abort.signal.aborted) return;
        const failed = failure(request);
        if (failed) return call.emit('error', failed);
        call.end(trailer());
      })();
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoResponse>) => {
      count('Bidi');
      track(call);
      let sequence = 0;
      call.on('data', (request: EchoRequest) => {
        const failed = failure(request);
        if (failed) return call.emit('error', failed);
        call.write({ payload: payloadFor(request), backend: options.name, sequence: sequence++, received_bytes: 0, metadata: [] });
      });
      call.on('end', () => call.end(trailer()));
    },
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host ?? '127.0.0.1'}:${options.port ?? 0}`, options.credentials ?? grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  (handle as { port: number }).port = port;
  handle.close = () =>
    new Promise<void>((resolve) => {
      server.tryShutdown(() => resolve());
      // In-flight streams of a test that is finishing must not hold the process.
      setTimeout(() => server.forceShutdown(), 2_000).unref();
    });
  return handle;
}
