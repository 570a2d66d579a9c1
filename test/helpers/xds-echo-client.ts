/**
 * A real proxyless gRPC client (@grpc/grpc-js with @grpc/grpc-js-xds) in a
 * process of its own, calling Echo on `xds:///echo`. Its own process because
 * grpc-js-xds reads GRPC_XDS_BOOTSTRAP once per process, so each client
 * gets the bootstrap its test wrote.
 *
 * As a script (`node xds-echo-client.ts`, GRPC_XDS_BOOTSTRAP set) it reads
 * one JSON command per line on stdin and answers each with one JSON line:
 *   {"id":1,"cmd":"run","count":300,"concurrency":10,"hashKey":"random"|"fixed:abc"}
 *       → {"id":1,"counts":{"backend-0":100,…},"failures":0,"errors":[]}
 *   {"id":2,"cmd":"load","concurrency":4}    starts RPCs in a loop → {"id":2}
 *   {"id":3,"cmd":"report"}                  → counts and failures since the last report (or load start)
 *   {"id":4,"cmd":"stop"}                    stops the loop, waits for RPCs in flight → the last window
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);

export interface Window {
  readonly counts: Record<string, number>;
  readonly failures: number;
  readonly errors: readonly string[];
}

export interface XdsEchoClient {
  readonly child: ChildProcess;
  run(count: number, options?: { concurrency?: number; hashKey?: string }): Promise<Window>;
  startLoad(concurrency?: number): Promise<void>;
  report(): Promise<Window>;
  stopLoad(): Promise<Window>;
  close(): Promise<void>;
}

/** Starts a client process reading `bootstrapFile`. */
export function startXdsEchoClient(bootstrapFile: string, env: Record<string, string> = {}): XdsEchoClient {
  const child = spawn(process.execPath, [SELF], {
    env: { ...process.env, GRPC_XDS_BOOTSTRAP: bootstrapFile, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-20_000); });
  const waiting = new Map<number, { resolve: (value: any) => void; reject: (error: Error) => void }>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const message = JSON.parse(line) as { id: number };
    waiting.get(message.id)?.resolve(message);
    waiting.delete(message.id);
  });
  child.once('exit', (code, signal) => {
    for (const { reject } of waiting.values()) reject(new Error(`xDS client exited (${code ?? signal}): ${stderr}`));
    waiting.clear();
  });
  let ids = 0;
  const ask = <T>(command: Record<string, unknown>): Promise<T> => new Promise((resolve, reject) => {
    const id = ++ids;
    waiting.set(id, { resolve, reject });
    child.stdin!.write(`${JSON.stringify({ id, ...command })}\n`);
  });
  return {
    child,
    run: (count, options = {}) => ask<Window>({ cmd: 'run', count, concurrency: options.concurrency ?? 10, hashKey: options.hashKey ?? 'random' }),
    startLoad: async (concurrency = 4) => { await ask({ cmd: 'load', concurrency }); },
    report: () => ask<Window>({ cmd: 'report' }),
    stopLoad: () => ask<Window>({ cmd: 'stop' }),
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

if (process.argv[1] === SELF) {
  const grpc = await import('@grpc/grpc-js');
  const xds = await import('@grpc/grpc-js-xds');
  xds.register();
  const { loadEchoPackage } = await import('../../src/demo/echo-service.ts');
  const { Echo } = loadEchoPackage();
  const client = new Echo('xds:///echo', grpc.credentials.createInsecure());
  const HASH_HEADER = 'x-user';

  let window = { counts: {} as Record<string, number>, failures: 0, errors: [] as string[] };
  const take = () => {
    const taken = window;
    window = { counts: {}, failures: 0, errors: [] };
    return taken;
  };
  const call = (hashKey: string) => new Promise<void>((resolve) => {
    const metadata = new grpc.Metadata();
    const key = hashKey.startsWith('fixed:') ? hashKey.slice(6) : Math.random().toString(36).slice(2);
    metadata.set(HASH_HEADER, key);
    client.Unary({ payload: Buffer.from('hi') }, metadata, { deadline: Date.now() + 5_000 }, (error, response) => {
      if (error) {
        window.failures++;
        if (window.errors.length < 5) window.errors.push(`${grpc.status[error.code]}: ${error.details}`);
      } else {
        window.counts[response!.backend] = (window.counts[response!.backend] ?? 0) + 1;
      }
      resolve();
    });
  });

  let loading = false;
  const workers: Promise<void>[] = [];
  const reply = (message: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(message)}\n`);

  for await (const line of createInterface({ input: process.stdin })) {
    const command = JSON.parse(line) as { id: number; cmd: string; count?: number; concurrency?: number; hashKey?: string };
    switch (command.cmd) {
      case 'run': {
        take();
        let left = command.count ?? 100;
        const worker = async () => { while (left-- > 0) await call(command.hashKey ?? 'random'); };
        await Promise.all(Array.from({ length: command.concurrency ?? 10 }, worker));
        reply({ id: command.id, ...take() });
        break;
      }
      case 'load': {
        take();
        loading = true;
        for (let i = 0; i < (command.concurrency ?? 4); i++) {
          workers.push((async () => {
            while (loading) {
              await call('random');
              // About 200 RPCs per second per worker: load without starving the test's own process.
              await new Promise((resolve) => setTimeout(resolve, 5));
            }
          })());
        }
        reply({ id: command.id });
        break;
      }
      case 'report':
        reply({ id: command.id, ...take() });
        break;
      case 'stop':
        loading = false;
        await Promise.all(workers.splice(0));
        reply({ id: command.id, ...take() });
        break;
    }
  }
}
