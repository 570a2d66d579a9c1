/** One JSON line per RPC, and one per WebSocket upgrade (with its session): off, to stdout, or to a file. */
import pino from 'pino';
import type { RpcRecord } from '../grpc/rpc-record.ts';
import type { WebSocketRecord } from '../websocket/session-record.ts';

export interface AccessLog {
  write(record: RpcRecord): void;
  /** A WebSocket upgrade, refused or served, once its session has ended (docs/websocket.md). */
  writeWebSocket?(record: WebSocketRecord): void;
  /** Flushes and closes the destination. */
  close(): Promise<void>;
}

const OFF: AccessLog = { write: () => {}, close: async () => {} };

export function createAccessLog(output: string): AccessLog {
  if (output === 'off') return OFF;
  const destination = pino.destination({ dest: output === 'stdout' ? 1 : output, sync: false, mkdir: true });
  const logger = pino({ base: null, timestamp: false, messageKey: 'msg' }, destination);
  // Sessions and RPCs cut by a drain end after the log has closed: their lines are dropped, not written to a closed stream.
  let closed = false;
  return {
    write(record) {
      if (closed) return;
      const [service, method] = splitPath(record.path);
      logger.info({
        time: new Date(record.time).toISOString(),
        route: record.route,
        service,
        method,
        cluster: record.cluster,
        endpoint: record.endpoint,
        grpc_status: record.status,
        reason: record.reason,
        error: record.error,
        duration_ms: Math.round((performance.now() - record.startedAt) * 1000) / 1000,
        retries: record.retries,
        bytes_in: record.bytesIn,
        bytes_out: record.bytesOut,
        peer: record.peer,
        listener: record.listener,
        protocol: record.protocol,
        trace_id: record.traceId,
        span_id: record.spanId,
      });
    },
    writeWebSocket(record) {
      if (closed) return;
      logger.info({
        time: new Date(record.time).toISOString(),
        kind: 'websocket',
        listener: record.listener,
        protocol: record.protocol,
        peer: record.peer,
        path: record.path,
        route: record.route,
        cluster: record.cluster,
        endpoint: record.endpoint,
        result: record.result,
        status: record.status,
        affinity: record.affinity,
        closed_by: record.closedBy,
        close_code: record.closeCode,
        proxy_reason: record.proxyReason,
        error: record.error,
        duration_ms: Math.round(performance.now() - record.startedAt),
        bytes_in: record.bytesFromClient,
        bytes_out: record.bytesFromBackend,
      });
    },
    // end() writes what is buffered (waiting for the file to open if it has not yet), then closes:
    // 'close' is the one event that says every line is in the file.
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        destination.once('close', () => resolve());
        destination.end();
      }),
  };
}

function splitPath(path: string): [string | undefined, string | undefined] {
  const slash = path.indexOf('/', 1);
  if (!path.startsWith('/') || slash < 0) return [undefined, undefined];
  return [path.slice(1, slash), path.slice(slash + 1)];
}
