/**
 * The parts of `npm run bench:xds` that run processes: the control plane
 * (the built command), the fake Kubernetes API it watches, the load workers
 * (bench/xds-load-worker.ts), and what /proc says about a process.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { endpointSlice, type FakeKubeApi } from '../test/helpers/fake-kube-api.ts';
import type { WorkerRequest } from './xds-load-worker.ts';

// The built command, as deployed: run from the TypeScript source, every process carries ~30 MiB more.
let cli = fileURLToPath(new URL('../dist/bin/switchyard.js', import.meta.url));

/** Another build of the command to measure (`--cli`: the code before a change, built elsewhere). */
export function useCli(file: string): void {
  cli = path.resolve(file);
}
const WORKER = fileURLToPath(new URL('./xds-load-worker.ts', import.meta.url));

export const CLUSTERS = 10;

/** Every process the bench starts: killed when it exits, however it exits (an error, Ctrl-C, a timeout's SIGTERM). */
const children = new Set<ChildProcess>();
const killAll = () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
};
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(1);
  });
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** The EndpointSlice of cluster `cluster`; each change moves one endpoint to a new address. */
export function sliceOf(cluster: number, change: number, endpointsPerCluster: number) {
  const ips = Array.from({ length: endpointsPerCluster }, (_, i) => `10.${cluster}.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  if (change > 0) ips[0] = `10.${cluster}.${200 + Math.floor(change / 250)}.${(change % 250) + 1}`;
  return endpointSlice(`echo-${cluster}`, `echo-${cluster}`, ips.map((ip, i) => ({ ip, zone: `zone-${i % 3}` })), { namespace: 'bench' });
}

export interface ControlPlaneFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly kubeconfig: string;
}

/** A control plane config for the bench; `limits` are written as given (the "before" code knows fewer of them). */
export async function writeControlPlaneConfig(dir: string, name: string, files: ControlPlaneFiles, port: number, limits: Record<string, number>, adminPort?: number): Promise<string> {
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(file, [
    `server: { address: 127.0.0.1, port: ${port}, tls: { cert_file: ${files.cert}, key_file: ${files.key}, client_ca_file: ${files.ca} } }`,
    'clusters:',
    ...Array.from({ length: CLUSTERS }, (_, c) => `  - { name: echo-${c}, kubernetes: { namespace: bench, service: echo-${c}, port: grpc, kubeconfig: ${files.kubeconfig} } }`),
    `authorization: { identities: [{ identity: spiffe://bench/clients, node_ids: ['*'], clusters: ['*'], listeners: ['*'] }] }`,
    `limits: { ${Object.entries(limits).map(([key, value]) => `${key}: ${value}`).join(', ')} }`,
    ...(adminPort === undefined ? [] : [`admin: { port: ${adminPort} }`]),
    'log_level: warn', '',
  ].join('\n'));
  return file;
}

export interface RunningControlPlane {
  readonly child: ChildProcess;
  readonly port: number;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `switchyard control-plane` and resolves once it listens (its log level must let the 'listening' line through: it is logged at info, so warn hides it; the port is read from the config). */
export async function startControlPlane(config: string, port: number): Promise<RunningControlPlane> {
  const child = track(spawn(process.execPath, [cli, 'control-plane', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] }));
  await until(() => canConnect(port), 30_000, `the control plane on port ${port}`, child);
  return {
    child,
    port,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}

async function canConnect(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export interface Worker {
  request<T = Record<string, unknown>>(message: WithoutId<WorkerRequest>): Promise<T>;
  close(): Promise<void>;
}

/** Forks a load worker and waits until it is ready. */
export async function startWorker(): Promise<Worker> {
  const child = track(fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] }));
  const waiting = new Map<number, (value: any) => void>();
  let ids = 0;
  const ready = new Promise<void>((resolve) => {
    child.on('message', (message: { id: number; ready?: boolean }) => {
      if (message.ready) resolve();
      waiting.get(message.id)?.(message);
      waiting.delete(message.id);
    });
  });
  await ready;
  return {
    request: (message) => new Promise((resolve) => {
      const id = ++ids;
      waiting.set(id, resolve);
      child.send({ ...message, id });
    }),
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.send({ id: ++ids, type: 'close' });
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3_000))]);
      child.kill('SIGKILL');
    },
  };
}

export interface ProcessSample {
  /** CPU seconds used so far (user + system). */
  readonly cpuSeconds: number;
  readonly rssMiB: number;
  /** The highest RSS so far (VmHWM). */
  readonly peakMiB: number;
}

export async function sample(pid: number): Promise<ProcessSample> {
  const [stat, status] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/status`, 'utf8')]);
  // Fields after the command name (which may hold spaces): utime is the 14th field, stime the 15th, in clock ticks (100/s).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)![1]);
  return { cpuSeconds: ticks / 100, rssMiB: round(kib('VmRSS') / 1024), peakMiB: round(kib('VmHWM') / 1024) };
}

export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, child?: ChildProcess): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (child && child.exitCode !== null) throw new Error(`${child.spawnargs.slice(1).join(' ')} exited (${child.exitCode}) while waiting for ${what}`);
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Applies every cluster's initial slice. */
export function seedKube(kube: FakeKubeApi, endpointsPerCluster: number): void {
  for (let c = 0; c < CLUSTERS; c++) kube.apply(sliceOf(c, 0, endpointsPerCluster));
}
