/**
 * `npm run bench`: Switchyard against HAProxy and nginx (and no proxy at
 * all) in front of the same three gRPC backends, on this machine, in one
 * run. Writes latest.md, latest.json and latency.svg to --out and prints the
 * summary table. Every process it starts is stopped at the end, on errors
 * and on Ctrl-C.
 *
 *   node bench/run.ts [--quick | --smoke] [--rounds N] [--rate N] [--out DIR] [--baseline-cli PATH]
 *
 *   (default)  3 rounds, 5 s runs; < 10 minutes
 *   --quick    1 round, short runs; < 2 minutes
 *   --smoke    tiny runs for the test suite; never installs anything, and
 *              runs without haproxy / nginx / h2load if they are missing
 *   --baseline-cli PATH
 *              also run another build (its dist/bin/switchyard.js) as
 *              "switchyard-baseline" through the rounds, streaming and idle
 *              memory: a change compared with what it replaces, in one run
 *
 * Exit codes: 0 all measurements done; 1 some failed (the report lists
 * them, and is still written); 2 bad usage or missing tools (not root).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBackends } from './backends.ts';
import { paramsFor, type Context, type Params, type Results } from './context.ts';
import { ensureTools, MissingToolsError, versionOf, type Tools } from './deps.ts';
import { writeRequestFile } from './load.ts';
import { installCleanup, onExit, stopAll } from './proc.ts';
import { waitForQuiet } from './interference.ts';
import { writeReports, summaryTable } from './report.ts';
import { grpcWebScenario } from './grpc-web.ts';
import { closedLoop, runRounds } from './rounds.ts';
import { identicalSequential, idleMemory, multiCore, slowBackend, streaming } from './scenarios.ts';
import { allocation, tlsRound } from './engine.ts';
import { websocketScenario } from './websocket.ts';
import { directTarget, startHaproxy, startNginx, startSwitchyard, type Target } from './targets.ts';

const USAGE = 'usage: node bench/run.ts [--quick | --smoke] [--rounds N] [--rate RPC_PER_S] [--out DIR] [--baseline-cli PATH]\n';

function parse(): Params {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      smoke: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      rate: { type: 'string' },
      out: { type: 'string', default: fileURLToPath(new URL('./results', import.meta.url)) },
      'baseline-cli': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const positive = (name: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      process.stderr.write(`bench: --${name}: expected a whole number ≥ 1, got "${value}"\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  const mode = values.smoke ? 'smoke' : values.quick ? 'quick' : 'full';
  const baselineCli = values['baseline-cli'] === undefined ? undefined : path.resolve(values['baseline-cli']);
  if (baselineCli !== undefined && !existsSync(baselineCli)) {
    process.stderr.write(`bench: --baseline-cli: ${baselineCli} does not exist (build that checkout first)\n`);
    process.exit(2);
  }
  return paramsFor(mode, { rounds: positive('rounds', values.rounds), rate: positive('rate', values.rate), out: path.resolve(values.out), ...(baselineCli !== undefined && { baselineCli }) });
}

const params = parse();
installCleanup();
const started = performance.now();
const clock = () => {
  const s = Math.round((performance.now() - started) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};
const log = (line: string) => process.stdout.write(`[${clock()}] ${line}\n`);
const results: Results = { meta: {}, targets: [], streaming: [], slow: [], notes: [], errors: [] };
const fail = (what: string, error: unknown) => {
  const message = `${what}: ${error instanceof Error ? error.message : String(error)}`;
  results.errors.push(message);
  log(`ERROR ${message}`);
};

let tools: Tools;
try {
  tools = await ensureTools({ smoke: params.mode === 'smoke', log });
} catch (error) {
  if (!(error instanceof MissingToolsError)) throw error;
  process.stderr.write(`bench: ${error.message}\n`);
  process.exit(2);
}
results.notes.push(...tools.notes);
if (!tools.h2load) results.notes.push('h2load missing: closed-loop figures come from the Node fallback (bench/open-loop.ts --closed), far below what h2load measures');

async function describeMachine(): Promise<Record<string, unknown>> {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown CPU';
  return {
    date: new Date().toISOString(), mode: params.mode, cpu, cores: os.availableParallelism(), kernel: os.release(), node: process.versions.node,
    ...(tools.haproxy && { haproxy: (await versionOf(tools.haproxy, ['-v'])).replace(/ - https.*/, '').replace(/^HAProxy version/, 'HAProxy') }),
    ...(tools.nginx && { nginx: (await versionOf(tools.nginx, ['-v'])).replace(/^nginx version: /, '') }),
    ...(tools.h2load && { h2load: await versionOf(tools.h2load, ['--version']) }),
  };
}

/** Runs one part of the bench; a failure is recorded and the next part still runs. */
async function step<T>(what: string, body: () => Promise<T>): Promise<T | undefined> {
  try {
    return await body();
  } catch (error) {
    fail(what, error);
    return undefined;
  }
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-bench-'));
onExit(() => rmSync(dir, { recursive: true, force: true }));
try {
  results.meta = await describeMachine();
  log(`${params.mode} run: ${params.rounds} round(s), open loop at ${params.rate} RPC/s, output to ${params.out}`);
  const backends = await startBackends(3);
  log(`backends: ${backends.map((b) => `${b.name} on ${b.port}`).join(', ')}`);
  const quietBudget = { ms: params.quietBudgetMs };
  const quiet = async () => { if (params.quietBudgetMs > 0) await waitForQuiet(quietBudget, log, params.quietProbeMs); };
  const ctx: Context = { params, tools, backends, dir, requestFile: writeRequestFile(dir), log, fail, quiet };
  const direct = directTarget(backends[0]!);
  results.backendCheck = await step('backend check', () => closedLoop(direct, ctx));
  if (results.backendCheck) log(`one backend direct, before any proxy: ${Math.round(results.backendCheck.rps).toLocaleString('en-US')} RPC/s closed loop`);

  const targets: Target[] = [direct];
  const switchyard = await step('start switchyard', () => startSwitchyard(backends, dir));
  if (switchyard) targets.push(switchyard);
  const baselineCli = params.baselineCli;
  if (baselineCli !== undefined) {
    const baseline = await step('start switchyard-baseline', () => startSwitchyard(backends, dir, { name: 'switchyard-baseline', cli: baselineCli }));
    if (baseline) targets.push(baseline);
    results.notes.push(`switchyard-baseline: ${baselineCli}, run beside this checkout's build with the same config.`);
  }
  for (const [name, binary, start] of [['haproxy', tools.haproxy, startHaproxy], ['nginx', tools.nginx, startNginx]] as const) {
    if (!binary) continue;
    const target = await step(`start ${name}`, () => start(binary, backends, dir));
    if (target) targets.push(target);
  }
  log(`targets: ${targets.map((t) => `${t.name} on ${t.port}`).join(', ')}`);

  results.targets = await runRounds(targets, ctx);
  results.streaming = (await step('streaming', () => streaming(targets, ctx))) ?? [];
  results.slow = (await step('slow backend', () => slowBackend(targets.filter((t) => t.name === 'haproxy' || t.name === 'nginx'), ctx))) ?? [];
  results.identical = await step('identical backends, sequential', () => identicalSequential(ctx));
  if (switchyard) results.multiCore = await step('multi-core', () => multiCore(switchyard, ctx));
  results.idle = await step('idle memory', () => idleMemory(ctx));
  if (baselineCli !== undefined) results.idleBaseline = await step('idle memory (baseline)', () => idleMemory(ctx, baselineCli));
  if (params.mode !== 'smoke') {
    results.tls = await step('TLS round', () => tlsRound(ctx));
    results.allocation = await step('allocation', () => allocation(ctx));
  }
  results.grpcWeb = await step('gRPC-Web', () => grpcWebScenario(ctx));
  results.websocket = await step('websocket', () => websocketScenario(ctx));
  if (tools.nginx) results.notes.push('nginx grpc_pass does not multiplex: each in-flight RPC takes its own upstream HTTP/2 connection (reused afterwards through `keepalive 64`).');
  if (tools.haproxy || tools.nginx) results.notes.push('HAProxy and nginx run as configured in bench/targets.ts: 1 thread / 1 worker, HTTP/2 to the backends, limits raised only where the defaults would break the runs (see the comments there).');
} catch (error) {
  fail('bench', error);
} finally {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}

results.meta.wallSeconds = Math.round((performance.now() - started) / 1000);
const files = writeReports(results, params);
process.stdout.write(`\n${summaryTable(results)}\n\n`);
log(`wrote ${files.join(', ')}`);
if (results.errors.length > 0) log(`${results.errors.length} measurement(s) failed; see the Errors section of latest.md`);
process.exit(results.errors.length > 0 ? 1 : 0);
