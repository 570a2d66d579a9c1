/**
 * gRPC-Web unary through Switchyard, against native gRPC through the same
 * process: what a browser protocol costs the proxy. One fresh Switchyard with
 * gRPC-Web on its listener; h2load sends the same unary Echo request (gRPC-Web
 * frames its messages as gRPC does) as gRPC, as gRPC-Web over HTTP/2, and as
 * gRPC-Web over HTTP/1.1, in turn, every round. There is no other gRPC-Web
 * proxy on this machine to compare with (HAProxy and nginx have no gRPC-Web
 * bridge; Envoy, which has, is not installed), so the comparison is with
 * Switchyard's own gRPC.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:http2';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from './backends.ts';
import { rpcCounts } from './backends.ts';
import type { Context, Params } from './context.ts';
import { cpuSeconds } from './metrics.ts';
import { DISTURBED_CORES, foreignLoad } from './interference.ts';
import { collect } from './load.ts';
import { spawnChild, startWithRetry } from './proc.ts';
import { disturbed } from './rounds.ts';
import { median } from './stats.ts';
import type { Target } from './targets.ts';

// Formatting as markdown.ts does it (which imports this file's section, so this file does not import it).
const num = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const ratio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : '–');
const table = (head: readonly string[], rows: readonly (readonly string[])[]) => [head, head.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');

const CLI = fileURLToPath(new URL('../dist/bin/switchyard.js', import.meta.url));
/** HTTP/1.1 carries one request at a time per connection: this many connections, one RPC in flight on each. */
const H1_CONNECTIONS = 32;

type Protocol = 'gRPC' | 'gRPC-Web, HTTP/2' | 'gRPC-Web, HTTP/1.1';
const PROTOCOLS: readonly Protocol[] = ['gRPC', 'gRPC-Web, HTTP/2', 'gRPC-Web, HTTP/1.1'];

export interface GrpcWebRow {
  readonly protocol: Protocol;
  /** Per round. */
  readonly rps: number[];
  readonly cpuPer100k: number[];
  /** Cores other processes used during each round's run (interference.ts). */
  readonly foreignCores: number[];
  /** h2load's failed + errored, summed over rounds, and the backends' own count of RPCs. */
  failed: number;
  backendRpcs: number;
}

export interface GrpcWebResult {
  readonly rows: GrpcWebRow[];
  readonly note?: string;
}

export async function grpcWebScenario(ctx: Context): Promise<GrpcWebResult> {
  const h2load = ctx.tools.h2load;
  if (!h2load) return { rows: [], note: 'h2load missing: not run' };
  const target = await startWebSwitchyard(ctx.backends, ctx.dir);
  try {
    await checkGrpcWeb(target.port, ctx.requestFile);
    const rows: GrpcWebRow[] = PROTOCOLS.map((protocol) => ({ protocol, rps: [], cpuPer100k: [], foreignCores: [], failed: 0, backendRpcs: 0 }));
    // Warm-up, not counted: the first protocol measured would otherwise pay for the fresh process's JIT.
    for (const protocol of PROTOCOLS) await runH2load(h2load, target.port, protocol, ctx, Math.min(1_000, ctx.params.closedMs));
    for (let round = 1; round <= ctx.params.rounds; round++) {
      // The order alternates, so no protocol always follows the same one.
      for (const row of round % 2 === 1 ? rows : [...rows].reverse()) {
        await ctx.quiet();
        const before = await rpcCounts(ctx.backends);
        const cpuBefore = cpuSeconds(target.pid);
        const foreign = foreignLoad();
        const result = await runH2load(h2load, target.port, row.protocol, ctx);
        row.foreignCores.push(foreign());
        const cpu = cpuSeconds(target.pid) - cpuBefore;
        const after = await rpcCounts(ctx.backends);
        row.rps.push(result.rps);
        row.cpuPer100k.push(result.succeeded > 0 ? (cpu / result.succeeded) * 1e5 : Number.NaN);
        row.failed += result.failed;
        row.backendRpcs += after.reduce((sum, count, i) => sum + count - (before[i] ?? 0), 0);
        ctx.log(`grpc-web round ${round}, ${row.protocol}: ${num(result.rps)} RPC/s, ${num(row.cpuPer100k.at(-1), 2)} CPU s/100k, ${result.failed} failed${disturbed(row.foreignCores.at(-1)!)}`);
      }
    }
    return { rows };
  } finally {
    await target.stop();
  }
}

/** `switchyard run` with gRPC-Web on its listener, round robin over the backends. */
function startWebSwitchyard(backends: readonly Backend[], dir: string): Promise<Target> {
  const name = 'switchyard/grpc-web';
  const endpoints = backends.map((b) => `{ address: 127.0.0.1, port: ${b.port} }`).join(', ');
  return startWithRetry(name, async (port) => {
    const file = path.join(dir, 'switchyard-grpc-web.yaml');
    writeFileSync(file, [
      `listeners: [{ name: bench, address: 127.0.0.1, port: ${port}, plaintext: true, web: { protocols: [grpc_web] } }]`,
      `clusters: [{ name: c0, endpoints: [${endpoints}] }]`,
      'routes: [{ match: { prefix: / }, cluster: c0 }]',
      'log_level: warn',
      'drain: { delay: 1ms, timeout: 1s }', '',
    ].join('\n'));
    const child = spawnChild(name, process.execPath, [CLI, 'run', '--config', file], { raiseNofile: true });
    return { child, value: { name, port, pid: child.pid, stop: () => child.stop() } };
  });
}

interface H2loadResult {
  rps: number;
  succeeded: number;
  failed: number;
}

/** h2load counts HTTP answers only; checkGrpcWeb and the backends' counters say the RPCs were real. */
async function runH2load(binary: string, port: number, protocol: Protocol, ctx: Context, durationMs = ctx.params.closedMs): Promise<H2loadResult> {
  const { params } = ctx;
  const shape = protocol === 'gRPC-Web, HTTP/1.1'
    ? ['--h1', '-c', String(H1_CONNECTIONS), '-m', '1']
    : ['-c', String(params.closedConnections), '-m', String(params.closedStreams)];
  const headers = protocol === 'gRPC' ? ['-H', 'content-type: application/grpc', '-H', 'te: trailers'] : ['-H', 'content-type: application/grpc-web+proto', '-H', 'x-grpc-web: 1'];
  const args = [...shape, '-D', `${durationMs}ms`, ...headers, '-d', ctx.requestFile, `http://127.0.0.1:${port}/switchyard.demo.v1.Echo/Unary`];
  const output = (await collect(spawnChild('h2load', binary, args), durationMs + 30_000)).join('\n');
  const finished = /finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(output);
  const requests = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(output);
  if (!finished || !requests) throw new Error(`cannot parse h2load output:\n${output.slice(-800)}`);
  return { rps: Number(finished[1]), succeeded: Number(requests[1]), failed: Number(requests[2]) + Number(requests[3]) };
}

/** One gRPC-Web call before the load: a message, then grpc-status 0 in the trailer frame, or the bench fails. */
async function checkGrpcWeb(port: number, requestFile: string): Promise<void> {
  const session = connect(`http://127.0.0.1:${port}`);
  try {
    const body = await new Promise<Buffer>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/switchyard.demo.v1.Echo/Unary', 'content-type': 'application/grpc-web+proto' });
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => resolve(Buffer.concat(chunks)));
      stream.on('error', reject);
      stream.end(readFileSync(requestFile));
    });
    const flags: number[] = [];
    let trailers = '';
    for (let offset = 0; offset + 5 <= body.length;) {
      const length = body.readUInt32BE(offset + 1);
      flags.push(body[offset]!);
      if (body[offset] === 0x80) trailers = body.subarray(offset + 5, offset + 5 + length).toString('latin1');
      offset += 5 + length;
    }
    if (flags.join() !== '0,128' || !/^grpc-status: 0\r\n/m.test(trailers)) throw new Error(`a gRPC-Web call through Switchyard did not succeed: frames ${flags.join()}, trailers ${JSON.stringify(trailers)}`);
  } finally {
    session.close();
  }
}

/** The report's section: RPC/s and CPU per RPC of each protocol, and gRPC-Web's cost over gRPC. */
export function grpcWebSection(result: GrpcWebResult | undefined, params: Params): string[] {
  if (!result || result.rows.length === 0) return ['## gRPC-Web', '', result?.note ?? 'not run', ''];
  const grpc = result.rows.find((row) => row.protocol === 'gRPC')!;
  const rows = result.rows.map((row) => [
    row.protocol, num(median(row.rps)), num(median(row.cpuPer100k), 2), row === grpc ? '–' : ratio(median(row.rps) / median(grpc.rps)),
    row === grpc ? '–' : ratio(median(row.cpuPer100k) / median(grpc.cpuPer100k)), String(row.failed), num(row.backendRpcs),
    row.foreignCores.map((cores) => (cores >= DISTURBED_CORES ? `**${cores.toFixed(2)}**` : cores.toFixed(2))).join(', '),
  ]);
  return [
    '## gRPC-Web', '',
    `Unary Echo through one fresh Switchyard with gRPC-Web on its listener (bench/grpc-web.ts), after 1 s of each as warm-up, the three protocols in turn (the order reversed every other round) in each of ${params.rounds} round(s), h2load for ${params.closedMs / 1000} s each: gRPC and gRPC-Web over HTTP/2 with -c ${params.closedConnections} -m ${params.closedStreams}, gRPC-Web over HTTP/1.1 with --h1 -c ${H1_CONNECTIONS} -m 1 (HTTP/1.1 has one request in flight per connection). CPU = the Switchyard process's utime+stime per 100,000 RPCs. No other gRPC-Web proxy runs here (HAProxy and nginx have none; Envoy is not installed), so the cost is against Switchyard's own gRPC.`, '',
    table(['protocol', 'RPC/s (median)', 'CPU s/100k RPC', 'RPC/s vs gRPC', 'CPU per RPC vs gRPC', 'failed/errored', 'backend RPCs', 'other load (per round)'], rows), '',
  ];
}
