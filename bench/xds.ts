/**
 * The control plane at fleet scale (`npm run bench:xds`; a benchmark, not a test).
 *
 *   npm run bench:xds                              # 1,000, 5,000 and 10,000 streams, then the replica restart
 *   npm run bench:xds -- --streams 2000            # one size (repeat --streams, or 1000,5000)
 *   npm run bench:xds -- --label before            # the run's name in bench/results/xds.{json,md} (default "after")
 *   npm run bench:xds -- --quick                   # 200 streams, 3 pushes, 100 endpoints per cluster: seconds
 *   npm run bench:xds -- --restart-streams 3000 --no-restart --pushes 10 --workers 4
 *   npm run bench:xds -- --cli /tmp/old/dist/bin/switchyard.js --label before   # measure another build
 *   npm run bench:xds -- --restart-max-streams 1400   # replicas that shed load past 1,400 streams (3,000 over 3)
 *
 * The control plane runs as the built `switchyard control-plane` (dist/), its
 * clusters fed by a fake Kubernetes API (no cluster runs on these machines);
 * the load comes from separate processes (bench/xds-load-worker.ts) with a
 * lean ADS client. See bench/xds-scenarios.ts for what is measured.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { issueIdentity, makeTestPki } from '../test/helpers/certs.ts';
import { FakeKubeApi } from '../test/helpers/fake-kube-api.ts';
import { CLUSTERS, seedKube, useCli } from './xds-harness.ts';
import { saveRun, type XdsRun } from './xds-report.ts';
import { runFleet, runRestart, type BenchSetup, type FleetResult } from './xds-scenarios.ts';

const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));
const { values } = parseArgs({
  options: {
    streams: { type: 'string', multiple: true },
    label: { type: 'string' },
    quick: { type: 'boolean' },
    pushes: { type: 'string' },
    workers: { type: 'string' },
    'restart-streams': { type: 'string' },
    'no-restart': { type: 'boolean' },
    /** Only the restart scenario; the label's fleet figures already recorded are kept. */
    'no-fleet': { type: 'boolean' },
    /** Limits the control plane of this code knows besides max_streams_per_identity, as key=value,... (the "before" code knows none). */
    limits: { type: 'string' },
    /** max_streams for each replica of the restart scenario (this code's load shedding; the "before" code has none). */
    'restart-max-streams': { type: 'string' },
    /** The built command to measure (default dist/bin/switchyard.js of this checkout). */
    cli: { type: 'string' },
  },
});
const quick = values.quick ?? false;
const sizes = values['no-fleet'] ? [] : values.streams?.flatMap((value) => value.split(',')).map(Number) ?? (quick ? [200] : [1_000, 5_000, 10_000]);
const pushes = Number(values.pushes ?? (quick ? 3 : 10));
const workers = Number(values.workers ?? 4);
const restartStreams = Number(values['restart-streams'] ?? (quick ? 300 : 3_000));
const label = values.label ?? 'after';
const extraLimits = Object.fromEntries((values.limits ?? '').split(',').filter(Boolean).map((pair) => pair.split('=')).map(([key, value]) => [key!, Number(value)]));
const endpointsPerCluster = quick ? 100 : 1_000;
const log = (line: string) => process.stdout.write(`${line}\n`);
if (values.cli) useCli(values.cli);

const pki = await makeTestPki();
const identity = await issueIdentity(pki, 'bench', { subject: '/CN=bench', san: 'URI:spiffe://bench/clients' });
const kube = await FakeKubeApi.start();
const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-bench-xds-'));
let change = 0;
try {
  seedKube(kube, endpointsPerCluster);
  const setup: BenchSetup = {
    dir,
    kube,
    files: { cert: pki.server.cert, key: pki.server.key, ca: pki.caCert, kubeconfig: await kube.writeKubeconfig() },
    client: { ca: pki.caCert, cert: identity.cert, key: identity.key },
    endpointsPerCluster,
    workers,
    streamsPerConnection: 100,
    extraLimits,
    restartLimits: values['restart-max-streams'] ? { max_streams: Number(values['restart-max-streams']) } : {},
    nextChange: () => ++change,
  };
  const loadAverage = os.loadavg().map((value) => Math.round(value * 100) / 100);
  log(`xDS bench "${label}": ${sizes.join(', ')} streams, ${pushes} pushes each; ${CLUSTERS} clusters × ${endpointsPerCluster} endpoints; load average ${loadAverage.join(' / ')}`);
  const fleet: FleetResult[] = [];
  for (const streams of sizes) {
    log(`fleet of ${streams} streams`);
    fleet.push(await runFleet(setup, streams, pushes, log));
  }
  let restart;
  if (!values['no-restart']) {
    log(`replica restart with ${restartStreams} streams`);
    restart = await runRestart(setup, restartStreams, log);
  }
  const run: XdsRun = {
    date: new Date().toISOString(),
    commit: values.cli ? `${values.cli}` : commit(),
    loadAverage,
    endpoints: CLUSTERS * endpointsPerCluster,
    clusters: CLUSTERS,
    workers,
    streamsPerConnection: setup.streamsPerConnection,
    fleet,
    restart,
  };
  await saveRun(RESULTS, quick ? 'xds-quick' : 'xds', label, run);
  log(`results: bench/results/${quick ? 'xds-quick' : 'xds'}.md`);
} finally {
  await kube.close();
  await pki.cleanup();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);

function commit(): string {
  try {
    const hash = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() !== '';
    return dirty ? `${hash}+changes` : hash;
  } catch {
    return 'unknown';
  }
}
