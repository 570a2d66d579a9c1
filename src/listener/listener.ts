/**
 * A downstream HTTP/2 listener: TLS 1.3 with ALPN h2, or cleartext h2c with
 * prior knowledge for local use. It knows nothing of routing: every stream
 * goes to the handler it was given. Admin and health traffic get listeners of
 * their own (see docs/architecture.md); the serving listener never answers them.
 */
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ListenerConfig } from '../config/schema.ts';

export type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, listener: string) => void;

export interface ListenerTls {
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface Listener {
  readonly name: string;
  /** The bound address; the port is the real one when the config asked for port 0. */
  readonly address: AddressInfo;
  /** Open client connections. */
  readonly connectionCount: number;
  /**
   * Stops accepting connections, sends GOAWAY on every open one and resolves
   * when they have closed, or after `graceMs`, when the rest are destroyed.
   */
  close(graceMs?: number): Promise<void>;
}

export async function startListener(config: ListenerConfig, tls: ListenerTls | undefined, handler: StreamHandler): Promise<Listener> {
  const settings: http2.Settings = {
    maxConcurrentStreams: config.http2.max_concurrent_streams,
    initialWindowSize: config.http2.initial_stream_window,
    maxHeaderListSize: config.http2.max_header_list_size,
    enablePush: false,
  };
  const options = { settings, maxSessionMemory: 64 };
  const server: http2.Http2Server | http2.Http2SecureServer = tls
    ? http2.createSecureServer({
        ...options,
        cert: tls.cert,
        key: tls.key,
        minVersion: 'TLSv1.3',
        ALPNProtocols: ['h2'],
        allowHTTP1: false,
      })
    : http2.createServer(options);

  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.setLocalWindowSize(config.http2.connection_window);
    // A misbehaving client is an ordinary event, never a crash.
    session.on('error', () => {});
  });
  server.on('stream', (stream, headers) => handler(stream as http2.ServerHttp2Stream, headers, config.name));
  server.on('sessionError', () => {});
  server.on('tlsClientError', () => {});

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => {});

  return {
    name: config.name,
    address: server.address() as AddressInfo,
    get connectionCount() {
      return sessions.size;
    },
    close: (graceMs = 5_000) =>
      new Promise<void>((resolve) => {
        const forceTimer = setTimeout(() => {
          for (const session of sessions) session.destroy();
        }, graceMs);
        forceTimer.unref();
        server.close(() => {
          clearTimeout(forceTimer);
          resolve();
        });
        for (const session of sessions) session.close();
      }),
  };
}
