/** A proxy started from a config object whose TLS files are real files, read as `switchyard run` reads them. */
import pino, { type Logger } from 'pino';
import { parseConfigObject, resolveConfig } from '../../src/config/load.ts';
import { Switchyard } from '../../src/switchyard.ts';
import type { RpcRecord } from '../../src/grpc/rpc-record.ts';

export interface SecureProxy {
  readonly proxy: Switchyard;
  readonly port: number;
  readonly records: RpcRecord[];
  close(): Promise<void>;
}

export async function startSecureProxy(config: Record<string, unknown>, logger: Logger = pino({ level: 'silent' })): Promise<SecureProxy> {
  const loaded = await resolveConfig(parseConfigObject(config, '(test config)'), { baseDir: '/' });
  const records: RpcRecord[] = [];
  const proxy = await Switchyard.start({ config: loaded.config, secrets: loaded.secrets, logger, onRpcEnd: (record) => records.push(record) });
  return { proxy, port: proxy.listeners[0]!.address.port, records, close: () => proxy.stop(1_000) };
}

/** A pino logger that keeps every line as an object, for asserting on logs. */
export function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}
