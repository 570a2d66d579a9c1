/**
 * The two scenarios of `npm run bench:xds`:
 *
 * - fleet: N state-of-the-world streams on one control plane, each watching
 *   every cluster's endpoints; the time until every stream has its first
 *   answer; then EndpointSlice changes, each timed from the change at the
 *   fake Kubernetes API to every stream's receipt of it (each stream ACKs at
 *   once); the control plane's CPU and RSS throughout.
 * - restart: N streams spread over three replicas; one replica is stopped
 *   (SIGTERM: its streams end UNAVAILABLE) and started again on the same
 *   port; the time until every stream is back and has its config, and where
 *   the streams are meanwhile.
 */
import type { FakeKubeApi } from '../test/helpers/fake-kube-api.ts';
import { now } from './xds-lean-client.ts';
import {
  CLUSTERS, percentile, round, sample, sliceOf, startControlPlane, startWorker, until, writeControlPlaneConfig,
  type ControlPlaneFiles, type Worker,
} from './xds-harness.ts';

export interface BenchSetup {
  readonly dir: string;
  readonly kube: FakeKubeApi;
  readonly files: ControlPlaneFiles;
  readonly client: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly endpointsPerCluster: number;
  readonly workers: number;
  readonly streamsPerConnection: number;
  /** Limits written into the control plane's config besides max_streams_per_identity. */
  readonly extraLimits: Record<string, number>;
  /** Limits for the replicas of the restart scenario only (max_streams, to see load shedding). */
  readonly restartLimits: Record<string, number>;
  /** Each push changes a cluster's slice; numbered across scenarios so that every change is new. */
  nextChange(): number;
}

export interface FleetResult {
  readonly streams: number;
  readonly syncSeconds: number;
  readonly syncCpuSeconds: number;
  readonly rssAfterSyncMiB: number;
  readonly rssAfterPushesMiB: number;
  readonly peakRssMiB: number;
  /** Per push: ms until the last stream had it. */
  readonly pushToAllMs: readonly number[];
  /** Over every stream of every push: ms from the change to the stream's receipt. */
  readonly perStreamMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly cpuSecondsPerPush: number;
}

const names = Array.from({ length: CLUSTERS }, (_, c) => `echo-${c}`);
const freePort = async (): Promise<number> => {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
};

async function startWorkers(setup: BenchSetup, replicas: string[], streams: number, label: string): Promise<Worker[]> {
  const workers = await Promise.all(Array.from({ length: setup.workers }, () => startWorker()));
  const per = Math.ceil(streams / workers.length);
  await Promise.all(workers.map((worker, i) => worker.request({
    type: 'start', replicas, ...setup.client, serverName: 'localhost', streamsPerConnection: setup.streamsPerConnection, names,
    prefix: `${label}-w${i}`, count: Math.min(per, streams - per * i),
  })));
  return workers;
}

type Status = { streams: number; open: number; synced: number; marked: number; byReplica: Record<string, number>; refused: number; reconnects: number };

async function statuses(workers: Worker[]): Promise<Status> {
  const all = await Promise.all(workers.map((worker) => worker.request<{ status: Status }>({ type: 'status' })));
  const total: Status = { streams: 0, open: 0, synced: 0, marked: 0, byReplica: {}, refused: 0, reconnects: 0 };
  for (const { status } of all) {
    for (const key of ['streams', 'open', 'synced', 'marked', 'refused', 'reconnects'] as const) total[key] += status[key];
    for (const [replica, count] of Object.entries(status.byReplica)) total.byReplica[replica] = (total.byReplica[replica] ?? 0) + count;
  }
  return total;
}

export async function runFleet(setup: BenchSetup, streams: number, pushes: number, log: (line: string) => void): Promise<FleetResult> {
  const port = await freePort();
  const config = await writeControlPlaneConfig(setup.dir, `fleet-${streams}`, setup.files, port, { max_streams_per_identity: streams + 1_000, ...setup.extraLimits });
  const controlPlane = await startControlPlane(config, port);
  const pid = controlPlane.child.pid!;
  let workers: Worker[] = [];
  try {
    const idle = await sample(pid);
    const startedAt = performance.now();
    workers = await startWorkers(setup, [`127.0.0.1:${port}`], streams, `fleet${streams}`);
    await until(async () => (await statuses(workers)).synced >= streams, 600_000, `all ${streams} streams to have their first answer`, controlPlane.child);
    const syncSeconds = round((performance.now() - startedAt) / 1000, 2);
    const synced = await sample(pid);
    log(`  ${streams} streams synced in ${syncSeconds} s; control plane ${synced.rssMiB} MiB, ${round(synced.cpuSeconds - idle.cpuSeconds, 2)} CPU s`);

    const pushToAllMs: number[] = [];
    const perStream: number[] = [];
    const cpuBefore = (await sample(pid)).cpuSeconds;
    for (let push = 0; push < pushes; push++) {
      const markAt = now();
      await Promise.all(workers.map((worker) => worker.request({ type: 'mark', at: markAt })));
      const changedAt = now();
      setup.kube.apply(sliceOf(push % CLUSTERS, setup.nextChange(), setup.endpointsPerCluster));
      await until(async () => (await statuses(workers)).marked >= streams, 120_000, `push ${push + 1} to reach all ${streams} streams`, controlPlane.child);
      const offset = changedAt - markAt;
      const latencies = (await Promise.all(workers.map((worker) => worker.request<{ latencies: number[] }>({ type: 'latencies' })))).flatMap((r) => r.latencies.map((ms) => ms - offset));
      latencies.sort((a, b) => a - b);
      pushToAllMs.push(round(latencies.at(-1)!));
      perStream.push(...latencies);
      log(`  push ${push + 1}: all ${streams} streams in ${round(latencies.at(-1)!)} ms (median stream ${round(percentile(latencies, 50))} ms)`);
    }
    const after = await sample(pid);
    perStream.sort((a, b) => a - b);
    return {
      streams,
      syncSeconds,
      syncCpuSeconds: round(synced.cpuSeconds - idle.cpuSeconds, 2),
      rssAfterSyncMiB: synced.rssMiB,
      rssAfterPushesMiB: after.rssMiB,
      peakRssMiB: after.peakMiB,
      pushToAllMs,
      perStreamMs: { p50: round(percentile(perStream, 50)), p99: round(percentile(perStream, 99)), max: round(perStream.at(-1)!) },
      cpuSecondsPerPush: round((after.cpuSeconds - cpuBefore) / pushes, 3),
    };
  } finally {
    await Promise.all(workers.map((worker) => worker.close()));
    await controlPlane.stop('SIGKILL');
  }
}

export interface RestartResult {
  readonly streams: number;
  readonly replicas: number;
  /** Streams per replica before the restart, by replica label (A is restarted). */
  readonly before: Record<string, number>;
  /** The most streams each replica held while A was away or coming back. */
  readonly peak: Record<string, number>;
  /** Seconds from stopping A until every stream was open again and had its config. */
  readonly allBackSeconds: number;
  /** Streams on each replica at the end. */
  readonly after: Record<string, number>;
  /** Streams refused for load (UNAVAILABLE with a retry hint), seen by the clients. */
  readonly refusedForLoad: number;
  readonly timeline: readonly { readonly t: number; readonly open: number; readonly synced: number; readonly byReplica: Record<string, number> }[];
}

export async function runRestart(setup: BenchSetup, streams: number, log: (line: string) => void): Promise<RestartResult> {
  const labels = ['A', 'B', 'C'];
  const ports = await Promise.all(labels.map(() => freePort()));
  const configs = await Promise.all(labels.map((label, i) => writeControlPlaneConfig(setup.dir, `replica-${label}`, setup.files, ports[i]!, { max_streams_per_identity: streams + 1_000, ...setup.extraLimits, ...setup.restartLimits })));
  const replicas = await Promise.all(configs.map((config, i) => startControlPlane(config, ports[i]!)));
  const labelOf = (address: string) => labels[ports.indexOf(Number(address.split(':').at(-1)))]!;
  const byLabel = (byReplica: Record<string, number>) => Object.fromEntries(labels.map((label) => [label, Object.entries(byReplica).filter(([address]) => labelOf(address) === label).reduce((sum, [, n]) => sum + n, 0)]));
  let workers: Worker[] = [];
  try {
    workers = await startWorkers(setup, ports.map((port) => `127.0.0.1:${port}`), streams, 'restart');
    await until(async () => (await statuses(workers)).synced >= streams, 600_000, `all ${streams} streams to have their config`);
    const before = byLabel((await statuses(workers)).byReplica);
    const refusedBefore = (await statuses(workers)).refused;
    log(`  ${streams} streams over 3 replicas: ${JSON.stringify(before)}; stopping A`);

    const stoppedAt = performance.now();
    await replicas[0]!.stop('SIGTERM');
    replicas[0] = await startControlPlane(configs[0]!, ports[0]!);
    const timeline: RestartResult['timeline'][number][] = [];
    const peak: Record<string, number> = { A: 0, B: 0, C: 0 };
    let allBackSeconds = Number.NaN;
    let dropped = false;
    // The streams A held end at once; wait until they are all open and synced again (and a little past, for the timeline).
    await until(async () => {
      const status = await statuses(workers);
      const t = round((performance.now() - stoppedAt) / 1000, 2);
      const counts = byLabel(status.byReplica);
      for (const label of labels) peak[label] = Math.max(peak[label]!, counts[label]!);
      timeline.push({ t, open: status.open, synced: status.synced, byReplica: counts });
      if (status.open < streams) dropped = true;
      if (Number.isNaN(allBackSeconds) && dropped && status.open >= streams && status.synced >= streams) allBackSeconds = t;
      return !Number.isNaN(allBackSeconds) && t >= allBackSeconds + 2;
    }, 120_000, 'every stream to be back');
    const final = await statuses(workers);
    log(`  every stream back after ${allBackSeconds} s; peak ${JSON.stringify(peak)}; now ${JSON.stringify(byLabel(final.byReplica))}`);
    return {
      streams,
      replicas: labels.length,
      before,
      peak,
      allBackSeconds,
      after: byLabel(final.byReplica),
      refusedForLoad: final.refused - refusedBefore,
      timeline: timeline.filter((_, i) => i % 5 === 0),
    };
  } finally {
    await Promise.all(workers.map((worker) => worker.close()));
    await Promise.all(replicas.map((replica) => replica.stop('SIGKILL')));
  }
}
