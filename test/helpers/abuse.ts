/**
 * For attack tests: Switchyard as a child process (so its RSS can be read from
 * /proc/<pid>/status), and a well-behaved grpc-js client that keeps calling
 * during the attack and reports errors and latency.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type * as grpc from '@grpc/grpc-js';
import { echoClient, unary } from './harness.ts';
import { collectLogs, exitOf, listeningPort, runCli, type LogEntry } from './cli.ts';

export interface ChildProxy {
  readonly child: ChildProcess;
  readonly port: number;
  readonly dir: string;
  /** Every JSON log line the process has written so far. */
  readonly logs: LogEntry[];
  /** Resident set size of the Switchyard process now, bytes. */
  rss(): Promise<number>;
  /** True while the process has not exited. */
  alive(): boolean;
  stop(): Promise<void>;
}

/** Starts `switchyard run` with `yaml` (a complete config); the listener must be named `main`. */
export async function startChildProxy(yaml: (dir: string) => string | Promise<string>): Promise<ChildProxy> {
  const dir = await mkdtemp(path.join(tmpdir(), 'switchyard-abuse-'));
  const config = path.join(dir, 'switchyard.yaml');
  await writeFile(config, await yaml(dir));
  const child = runCli(['run', '--config', config]);
  const exited = exitOf(child);
  const logs = collectLogs(child);
  let exitedYet = false;
  void exited.then(() => { exitedYet = true; });
  const port = await listeningPort(child, 'main');
  return {
    child,
    port,
    dir,
    logs,
    rss: async () => {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      const match = /VmRSS:\s+(\d+) kB/.exec(status);
      return Number(match![1]) * 1024;
    },
    alive: () => !exitedYet,
    stop: async () => {
      if (!exitedYet) child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface LoadReport {
  readonly calls: number;
  readonly errors: string[];
  readonly p99Ms: number;
  /** The slowest call, ms: a stall of the proxy shows here first. */
  readonly maxMs: number;
}

/** A grpc-js client calling Unary back to back (`concurrency` at a time) until stop(). */
export interface Load {
  /** Calls completed so far (since the last reset). */
  readonly calls: number;
  /** Forgets the figures so far (e.g. the first call's connection set-up). */
  reset(): void;
  stop(): Promise<LoadReport>;
}

export function wellBehavedLoad(target: string, concurrency = 4, credentials?: grpc.ChannelCredentials): Load {
  const client = echoClient(target, credentials);
  let latencies: number[] = [];
  let errors: string[] = [];
  let running = true;
  const worker = async () => {
    while (running) {
      const started = performance.now();
      try {
        await unary(client, { payload: Buffer.from('well-behaved') }, undefined, { deadline: Date.now() + 5_000 });
        latencies.push(performance.now() - started);
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    get calls() {
      return latencies.length;
    },
    reset: () => {
      latencies = [];
      errors = [];
    },
    stop: async () => {
      running = false;
      await Promise.all(workers);
      client.close();
      latencies.sort((a, b) => a - b);
      const p99Ms = latencies.length === 0 ? Infinity : latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]!;
      return { calls: latencies.length, errors, p99Ms, maxMs: latencies.length === 0 ? Infinity : latencies.at(-1)! };
    },
  };
}
