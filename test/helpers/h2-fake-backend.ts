/**
 * A backend written in raw frames, for testing the proxy's side of HTTP/2 that
 * talks to backends (src/http2/client-connection.ts): it accepts the proxy's
 * connections on loopback, sends its SETTINGS (or whatever opening a test
 * gives it), records every frame, and hands each request to the test, which
 * answers with any frames it likes, malformed ones included. A real gRPC
 * server cannot be made to break the protocol, which is why this one exists.
 */
import * as net from 'node:net';
import { grpcMessage, HpackReader } from './h2-conformance.ts';
import { Flag, frame, FrameType, headerBlock, readFrames, settingsFrame, type RawConnection } from './raw-h2.ts';

export interface FakeRequest {
  readonly connection: RawConnection;
  readonly streamId: number;
  /** The request's header fields, decoded. */
  readonly headers: Map<string, string>;
}

export interface FakeBackendOptions {
  /** Bytes sent when a connection is accepted; default an empty SETTINGS. */
  readonly opening?: Buffer;
  /** A request arrived (its HEADERS; its DATA may follow). */
  onRequest(request: FakeRequest): void;
}

export interface FakeBackend {
  readonly port: number;
  readonly connections: RawConnection[];
  readonly requests: FakeRequest[];
  close(): Promise<void>;
}

export async function startFakeBackend(options: FakeBackendOptions): Promise<FakeBackend> {
  const connections: RawConnection[] = [];
  const requests: FakeRequest[] = [];
  const server = net.createServer((socket) => {
    // Every header block is read, in order, whoever it is for: each may change the dynamic table.
    const hpack = new HpackReader();
    const connection: RawConnection = readFrames(socket, {
      ackSettings: true,
      keepPayloads: true,
      afterPreface: true,
      onFrame: (f) => {
        if (f.type !== FrameType.HEADERS) return;
        if ((f.flags & Flag.END_HEADERS) === 0) throw new Error('the fake backend does not join CONTINUATION frames');
        const headers = hpack.read(f.payload!);
        if (requests.some((r) => r.connection === connection && r.streamId === f.streamId)) return;
        const request = { connection, streamId: f.streamId, headers };
        requests.push(request);
        options.onRequest(request);
      },
    });
    connections.push(connection);
    socket.write(options.opening ?? settingsFrame([]));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    requests,
    close: async () => {
      for (const connection of connections) connection.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Response HEADERS: :status 200 and gRPC's content-type, plus `extra`; END_STREAM when `endStream`. */
export function responseHeaders(streamId: number, extra: readonly (readonly [string, string])[] = [], endStream = false): Buffer {
  const block = headerBlock([[':status', '200'], ['content-type', 'application/grpc'], ...extra]);
  return frame(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), streamId, block);
}

/** Trailers with grpc-status (END_STREAM). */
export function trailers(streamId: number, status = 0, extra: readonly (readonly [string, string])[] = []): Buffer {
  return frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, streamId, headerBlock([['grpc-status', String(status)], ...extra]));
}

/** A whole, well-formed answer: headers, one message (an EchoResponse's bytes), trailers with status OK. */
export function goodAnswer(streamId: number, message: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([responseHeaders(streamId), frame(FrameType.DATA, 0, streamId, grpcMessage(message)), trailers(streamId)]);
}
