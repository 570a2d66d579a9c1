/**
 * For attack tests: Switchyard as a child process (so its RSS can be read from
 * /proc/<pid>/status), a well-behaved grpc-js client that keeps calling
 * during the attack and reports errors and latency, and a bench that runs one
 * attack at a time with both and checks what every attack test must show.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { echoClient, readJsonLines, unary, waitFor } from './harness.ts';
import { collectLogs, exitOf, listeningPort, runCli, type LogEntry } from './cli.ts';
import { spawnEchoProcess } from './echo-process.ts';
import type { RawConnectOptions } from './raw-h2.ts';
import { closedWithin, connectReady, type AttackConnection } from './raw-h2-attack.ts';

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

/** The access log fields the attack tests read. */
export interface AccessLine {
  readonly peer: string;
  readonly service?: string;
  readonly endpoint?: string;
  readonly grpc_status?: number;
  readonly reason?: string;
}

/** What the proxy's RSS and the bystander showed during an attack. */
export interface Measured {
  /** RSS of the proxy just before the attack, and the most it reached during it, bytes. */
  readonly rssBefore: number;
  readonly rssPeak: number;
  readonly bystander: LoadReport;
}

/** What one attack on one connection did. */
export interface AttackOutcome extends Measured {
  /** The attacker's connection, closed by then unless the attack was told to leave it open. */
  readonly connection: AttackConnection;
  /** `:port` of the attacker's socket, as it ends the proxy's `peer` field. */
  readonly attackerPeer: string;
}

export interface AttackOptions {
  /** How much the proxy's RSS may grow over its size just before the attack, bytes: asserted. */
  readonly rssBudget: number;
  readonly connect?: RawConnectOptions;
  /** The proxy must close the attacker's connection within this, ms (default 5 s); undefined with `leaveOpen`. */
  readonly closeWithinMs?: number;
  /** The attack ends with the connection still open (a limit that refuses, rather than closes). */
  readonly leaveOpen?: boolean;
}

/**
 * A Switchyard process in front of Echo backends in processes of their own (the attack's cost to them
 * must not slow the bystander), with a helper that runs one attack while a well-behaved grpc-js
 * client calls through the proxy on its own connection. After each attack it asserts what every
 * attack test must show: the proxy process lives, its RSS grew less than the attack's stated budget,
 * and the bystander saw no error (each call has a 5 s deadline) and completed calls after the attack
 * ended. Its p99 is reported, not asserted: with other test files beside it on a 2-core machine it
 * measured 5–170 ms, and over 1 s when the machine's load was 15; what made it slow in the past (streams
 * routed before their resets were read) is asserted where it can happen, as a count of routed streams.
 */
export interface AttackBench {
  readonly proxy: ChildProxy;
  /** One line per attack: peak RSS growth, the bystander's p99, the GOAWAY code (printed by close()). */
  readonly figures: string[];
  /** Runs `run` on a connection that has exchanged SETTINGS, then expects the proxy to close it. */
  attack(name: string, options: AttackOptions, run: (connection: AttackConnection) => Promise<void>): Promise<AttackOutcome>;
  /** The same checks around `run`, which makes its own connections (bad prefaces, many sockets). */
  underLoad(name: string, rssBudget: number, run: () => Promise<void>): Promise<Measured>;
  /** Access log lines (one per RPC that reached the RPC path) from `peer` (a closed connection's `:port`). */
  rpcsFrom(peer: string): Promise<AccessLine[]>;
  /** How many of those there are: streams that reached the router, whether or not a backend saw them. */
  routedFrom(peer: string): Promise<number>;
  close(): Promise<void>;
}

export interface AttackBenchOptions {
  /** YAML for the listener's `http2:` block, e.g. `{ idle_timeout: 300ms }`. */
  readonly http2?: string;
  /** YAML for the cluster's extra fields (indented as a cluster's fields). */
  readonly cluster?: string;
  /** YAML for routes before the catch-all one to the Echo backends (indented as list items under `routes:`). */
  readonly routes?: string;
}

/** Bystander calls per attack, at least: during it and after. */
const BYSTANDER_CALLS = 100;

export async function startAttackBench(options: AttackBenchOptions = {}): Promise<AttackBench> {
  const backends = await Promise.all([spawnEchoProcess('backend-0'), spawnEchoProcess('backend-1')]);
  const proxy = await startChildProxy(() => `
access_log: { output: access.log }
listeners:
  - name: main
    port: 0
    plaintext: true
${options.http2 ? `    http2: ${options.http2}\n` : ''}clusters:
  - name: echo
    endpoints: [${backends.map((b) => `{ address: 127.0.0.1, port: ${b.port} }`).join(', ')}]
${options.cluster ?? ''}
routes:
${options.routes ?? ''}
  - match: { prefix: / }
    cluster: echo
`);
  // Warm up (JIT, pools) so the first attack does not pay for it.
  const warm = wellBehavedLoad(`127.0.0.1:${proxy.port}`);
  await waitFor(() => warm.calls >= 200, 'the warm-up');
  assert.deepEqual((await warm.stop()).errors, []);
  const figures: string[] = [];

  const underLoad = async (name: string, rssBudget: number, run: () => Promise<void>): Promise<Measured> => {
    const bystander = wellBehavedLoad(`127.0.0.1:${proxy.port}`);
    await waitFor(() => bystander.calls >= 10, 'the bystander to be under way');
    bystander.reset();
    const rssBefore = await proxy.rss();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => void proxy.rss().then((rss) => { rssPeak = Math.max(rssPeak, rss); }, () => {}), 20);
    let report: LoadReport;
    try {
      await run();
      rssPeak = Math.max(rssPeak, await proxy.rss());
      // Calls that started after the attack ended must complete too, and enough in all for a p99.
      const after = bystander.calls;
      await waitFor(() => bystander.calls >= Math.max(after + 20, BYSTANDER_CALLS), 'the bystander to complete calls after the attack');
    } finally {
      clearInterval(sampler);
      report = await bystander.stop();
    }
    const growth = rssPeak - rssBefore;
    figures.push(`${name}: RSS +${mib(growth)} MiB (budget ${mib(rssBudget)}), bystander p99 ${report.p99Ms.toFixed(1)} ms over ${report.calls} calls`);
    assert.ok(proxy.alive(), `${name}: the proxy process is still running`);
    assert.deepEqual(report.errors, [], `${name}: the bystander saw no error`);
    assert.ok(growth < rssBudget, `${name}: RSS grew ${mib(growth)} MiB, over the budget of ${mib(rssBudget)} MiB`);
    return { rssBefore, rssPeak, bystander: report };
  };

  const attack = async (name: string, attackOptions: AttackOptions, run: (connection: AttackConnection) => Promise<void>): Promise<AttackOutcome> => {
    let connection: AttackConnection | undefined;
    let attackerPeer = '';
    const measured = await underLoad(name, attackOptions.rssBudget, async () => {
      connection = await connectReady(proxy.port, attackOptions.connect);
      // As the proxy logs it (remoteAddress:remotePort); the address may be IPv4-mapped, the port tells.
      attackerPeer = `:${connection.socket.localPort}`;
      try {
        await run(connection);
        if (!attackOptions.leaveOpen) await closedWithin(connection, attackOptions.closeWithinMs ?? 5_000, name);
      } finally {
        connection.close();
      }
    });
    const goAway = connection!.answers.goAway;
    figures[figures.length - 1] += `, GOAWAY ${goAway === undefined ? 'none' : goAway.code}`;
    return { ...measured, connection: connection!, attackerPeer };
  };

  const rpcsFrom = async (peer: string): Promise<AccessLine[]> => {
    // Lines are written in the order RPCs end: once a call made now is in the log, so is every stream of `peer`.
    const marker = new grpc.Client(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    await new Promise<void>((resolve) => {
      marker.makeUnaryRequest('/switchyard.test.Marker/After', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), () => resolve());
    });
    marker.close();
    let lines: AccessLine[] = [];
    await waitFor(async () => {
      lines = await readJsonLines<AccessLine>(path.join(proxy.dir, 'access.log'));
      return lines.some((line) => line.service === 'switchyard.test.Marker');
    }, 'the marker call in the access log');
    return lines.filter((line) => line.peer.endsWith(peer));
  };
  const routedFrom = async (peer: string) => (await rpcsFrom(peer)).length;

  return {
    proxy,
    figures,
    attack,
    underLoad,
    rpcsFrom,
    routedFrom,
    close: async () => {
      await proxy.stop();
      await Promise.all(backends.map((b) => b.kill()));
      console.log(`# attacks: ${figures.join('; ')}`);
    },
  };
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
