/**
 * A grpc-js backend of the Echo service for the web tests, with what they
 * need to see beyond the demo server: response headers and trailers to read,
 * a trailers-only failure, and a server stream that sends each message only
 * once the test says the client has the previous one.
 */
import * as grpc from '@grpc/grpc-js';
import { loadEchoPackage, type EchoRequest, type EchoResponse } from '../../src/demo/echo-service.ts';

export interface WebBackend {
  readonly port: number;
  /** The client got message `sequence` of the current gated stream. */
  delivered(sequence: number): void;
  /** Messages of gated streams written so far. */
  readonly written: number[];
  close(): Promise<void>;
}

/** How long the gated stream waits for the client to get a message before it fails the stream saying so. */
const DELIVERY_WAIT_MS = 5_000;

/**
 * Unary: echoes the payload and lists the request metadata (and deadline) in `metadata`; sends header
 * `x-reply-header` and trailer `x-reply-trailer`; `fail_code` fails it after the headers, or, with
 * `x-trailers-only: yes`, before them (a trailers-only answer carrying trailer `x-failure-detail`).
 * `delay_ms` delays the answer. ServerStream: `count` messages; with `x-gated: yes`, message n+1 is
 * written only after delivered(n).
 */
export async function startWebBackend(): Promise<WebBackend> {
  const { Echo } = loadEchoPackage();
  const server = new grpc.Server();
  let deliveredUpTo = -1;
  let waiter: (() => void) | undefined;
  const written: number[] = [];
  const waitForDelivery = (sequence: number) => new Promise<boolean>((resolve) => {
    if (deliveredUpTo >= sequence) return resolve(true);
    const timer = setTimeout(() => resolve(false), DELIVERY_WAIT_MS);
    waiter = () => {
      if (deliveredUpTo < sequence) return;
      clearTimeout(timer);
      resolve(true);
    };
  });
  server.addService(Echo.service, {
    Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoResponse>, callback: grpc.sendUnaryData<EchoResponse>) => {
      const request = call.request;
      const trailersOnly = call.metadata.get('x-trailers-only')[0] === 'yes';
      const fail = () => {
        const metadata = new grpc.Metadata();
        metadata.set('x-failure-detail', 'requested');
        callback({ code: request.fail_code!, details: request.fail_message ?? '', metadata } as grpc.ServiceError);
      };
      if (request.fail_code && trailersOnly) return fail();
      const headers = new grpc.Metadata();
      headers.set('x-reply-header', 'from-backend');
      call.sendMetadata(headers);
      const timer = setTimeout(() => {
        if (request.fail_code) return fail();
        const lines = Object.entries(call.metadata.getMap()).map(([key, value]) => `${key}=${Buffer.isBuffer(value) ? `bin:${value.toString('base64')}` : String(value)}`);
        const deadline = call.getDeadline();
        if (deadline instanceof Date || (typeof deadline === 'number' && Number.isFinite(deadline))) lines.push(`deadline-remaining-ms=${Number(deadline) - Date.now()}`);
        const trailer = new grpc.Metadata();
        trailer.set('x-reply-trailer', 'done');
        callback(null, { payload: request.payload ?? Buffer.alloc(0), backend: 'web-backend', sequence: 0, received_bytes: 0, metadata: lines.sort() }, trailer);
      }, request.delay_ms ?? 0);
      call.on('cancelled', () => clearTimeout(timer));
    },
    ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoResponse>) => {
      const request = call.request;
      const gated = call.metadata.get('x-gated')[0] === 'yes';
      void (async () => {
        if (gated) deliveredUpTo = -1;
        for (let sequence = 0; sequence < (request.count ?? 0); sequence++) {
          if (gated && sequence > 0 && !(await waitForDelivery(sequence - 1))) {
            call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: `message ${sequence - 1} had not reached the client ${DELIVERY_WAIT_MS} ms after it was sent` });
            return;
          }
          if (gated) written.push(sequence);
          call.write({ payload: request.payload ?? Buffer.alloc(0), backend: 'web-backend', sequence, received_bytes: 0, metadata: [] });
          if (request.delay_ms) await new Promise((resolve) => setTimeout(resolve, request.delay_ms));
        }
        if (request.fail_code) call.emit('error', { code: request.fail_code, details: request.fail_message ?? '' });
        else call.end();
      })();
    },
    ClientStream: (_call: unknown, callback: grpc.sendUnaryData<EchoResponse>) => callback({ code: grpc.status.UNIMPLEMENTED } as grpc.ServiceError),
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoResponse>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED }),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  return {
    port,
    written,
    delivered(sequence) {
      deliveredUpTo = Math.max(deliveredUpTo, sequence);
      waiter?.();
    },
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}
