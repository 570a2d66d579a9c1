/**
 * One standard gRPC health check (grpc.health.v1.Health/Check) over a raw
 * HTTP/2 stream from an EndpointPool (the contract of src/grpc/streams.ts), with the protobuf messages encoded by
 * hand: HealthCheckRequest is `string service = 1`, HealthCheckResponse is
 * `ServingStatus status = 1` (UNKNOWN 0, SERVING 1, NOT_SERVING 2,
 * SERVICE_UNKNOWN 3). Only SERVING passes.
 */
import type { StreamReceiver } from '../upstream/endpoint-pool.ts';
import type { HeaderMap, UpstreamBreak, UpstreamEvents, UpstreamStream } from '../grpc/streams.ts';
import { Status } from '../grpc/status.ts';
import { formatGrpcTimeout } from '../grpc/timeout.ts';

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

const SERVING_STATUS_NAMES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
const STATUS_NAMES = new Map<number, string>(Object.entries(Status).map(([name, code]) => [code, name]));

/** A health response is a few bytes; anything much larger is not one. */
const MAX_RESPONSE_BYTES = 16 << 10;

export type ProbeResult = { readonly passed: true } | { readonly passed: false; readonly reason: string };

/** What a probe needs of a pool: EndpointPool fits. */
export interface StreamOpener {
  open(headers: HeaderMap, receiver: StreamReceiver): void;
}

export interface ProbeOptions {
  /** The service asked about; "" is the server as a whole. */
  readonly service: string;
  /** Covers everything: waiting for a connection, the request and the response. */
  readonly timeoutMs: number;
  /** Aborting ends the probe at once (its promise then resolves as failed). */
  readonly signal?: AbortSignal | undefined;
}

/** Sends one Check on a stream from `pool`. Never rejects: every failure is a result with a reason. */
export function probeHealth(pool: StreamOpener, options: ProbeOptions): Promise<ProbeResult> {
  return new Promise((resolve) => new Probe(pool, options, resolve).start());
}

/** HealthCheckRequest{service} in gRPC's length-prefixed framing. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  // proto3 leaves a field at its default ("") out of the message altogether.
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), encodeVarint(name.length), name]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

/**
 * The serving status from a framed HealthCheckResponse, or an Error saying
 * what is wrong with the bytes. Unknown fields are skipped, as protobuf asks;
 * a message without field 1 has status UNKNOWN (0).
 */
export function decodeHealthCheckResponse(body: Buffer): number | Error {
  if (body.length < 5) return new Error(`response body of ${body.length} bytes is not a gRPC message`);
  if (body[0] !== 0) return new Error('compressed response (none was asked for)');
  const length = body.readUInt32BE(1);
  if (body.length < 5 + length) return new Error(`truncated gRPC message (${body.length - 5} of ${length} bytes)`);
  const message = body.subarray(5, 5 + length);
  let status = 0;
  let offset = 0;
  while (offset < message.length) {
    const tag = readVarint(message, offset);
    if (!tag) return new Error('malformed protobuf tag');
    offset = tag.next;
    const field = Math.floor(tag.value / 8);
    const wireType = tag.value & 7;
    if (wireType === 0) {
      const value = readVarint(message, offset);
      if (!value) return new Error('malformed protobuf varint');
      offset = value.next;
      if (field === 1) status = value.value;
    } else if (wireType === 2) {
      const size = readVarint(message, offset);
      if (!size) return new Error('malformed protobuf length');
      offset = size.next + size.value;
    } else if (wireType === 1) {
      offset += 8;
    } else if (wireType === 5) {
      offset += 4;
    } else {
      return new Error(`unsupported protobuf wire type ${wireType}`);
    }
    if (offset > message.length) return new Error('protobuf field runs past the message');
  }
  return status;
}

export function servingStatusName(status: number): string {
  return SERVING_STATUS_NAMES[status] ?? `serving status ${status}`;
}

function encodeVarint(value: number): Buffer {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** A varint (exact up to 2^53); undefined when it runs past the buffer or past 10 bytes. */
function readVarint(buffer: Buffer, offset: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = offset; i < buffer.length && i < offset + 10; i++) {
    const byte = buffer[i]!;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return { value, next: i + 1 };
    scale *= 128;
  }
  return undefined;
}

function percentDecoded(message: string): string {
  try {
    return decodeURIComponent(message);
  } catch {
    return message;
  }
}

class Probe implements StreamReceiver, UpstreamEvents {
  readonly #pool: StreamOpener;
  readonly #options: ProbeOptions;
  readonly #resolve: (result: ProbeResult) => void;
  #timer: NodeJS.Timeout | undefined;
  #stream: UpstreamStream | undefined;
  #done = false;
  #headers: HeaderMap | undefined;
  #trailers: HeaderMap | undefined;
  readonly #chunks: Buffer[] = [];
  #bytes = 0;

  constructor(pool: StreamOpener, options: ProbeOptions, resolve: (result: ProbeResult) => void) {
    this.#pool = pool;
    this.#options = options;
    this.#resolve = resolve;
  }

  start(): void {
    const { signal, timeoutMs } = this.#options;
    if (signal?.aborted) return this.#finish({ passed: false, reason: 'health checking stopped' });
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#timer = setTimeout(() => this.#finish({ passed: false, reason: `timed out after ${timeoutMs} ms` }), timeoutMs);
    this.#timer.unref();
    this.#pool.open(
      {
        ':method': 'POST',
        ':path': HEALTH_CHECK_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': formatGrpcTimeout(timeoutMs),
        'user-agent': 'switchyard-health-check',
      },
      this,
    );
  }

  onStream(error: Error | undefined, stream: UpstreamStream | undefined): void {
    if (!stream) return this.#finish({ passed: false, reason: `connect failed: ${error?.message ?? 'no stream'}` });
    if (this.#done) {
      // Timed out or stopped while waiting for a connection.
      stream.cancel();
      return;
    }
    this.#stream = stream;
    stream.attach(this);
    stream.write(encodeHealthCheckRequest(this.#options.service));
    stream.end();
  }

  onResponse(headers: HeaderMap): void {
    this.#headers = headers;
  }

  onResponseData(chunk: Buffer): void {
    this.#bytes += chunk.length;
    if (this.#bytes > MAX_RESPONSE_BYTES) return this.#finish({ passed: false, reason: `response larger than ${MAX_RESPONSE_BYTES} bytes` });
    this.#chunks.push(chunk);
  }

  onTrailers(trailers: HeaderMap): void {
    this.#trailers = trailers;
  }

  onResponseEnd(): void {
    this.#finish(this.#verdict(undefined));
  }

  onRequestDrain(): void {}

  onUpstreamClose(broken: UpstreamBreak | undefined): void {
    this.#finish(this.#verdict(broken));
  }

  #verdict(broken: UpstreamBreak | undefined): ProbeResult {
    const headers = this.#headers;
    const why = broken === undefined ? undefined : (broken.connectionError ?? `stream closed with code ${broken.rstCode}`);
    if (!headers) return { passed: false, reason: `no response: ${why ?? 'stream ended'}` };
    const httpStatus = Number(headers[':status']);
    if (httpStatus !== 200) return { passed: false, reason: `HTTP ${httpStatus}` };
    // A trailers-only response carries grpc-status in its headers.
    const statusSource = this.#trailers ?? headers;
    const grpcStatus = statusSource['grpc-status'];
    if (grpcStatus === undefined) {
      return { passed: false, reason: why ? `stream failed: ${why}` : 'response without grpc-status' };
    }
    const code = Number(grpcStatus);
    if (code !== Status.OK) {
      const message = statusSource['grpc-message'];
      const name = STATUS_NAMES.get(code) ?? `status ${code}`;
      return { passed: false, reason: `grpc-status ${name}${typeof message === 'string' && message ? `: ${percentDecoded(message)}` : ''}` };
    }
    const status = decodeHealthCheckResponse(Buffer.concat(this.#chunks));
    if (status instanceof Error) return { passed: false, reason: status.message };
    return status === ServingStatus.SERVING ? { passed: true } : { passed: false, reason: servingStatusName(status) };
  }

  readonly #onAbort = (): void => this.#finish({ passed: false, reason: 'health checking stopped' });

  #finish(result: ProbeResult): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    this.#options.signal?.removeEventListener('abort', this.#onAbort);
    this.#stream?.cancel();
    this.#resolve(result);
  }
}
