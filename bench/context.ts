/**
 * What the bench's parts share: the run's parameters (from the command
 * line, per mode), the running backends and tools, and the shape of the
 * results that report.ts turns into latest.md / latest.json / latency.svg.
 */
import type { Backend } from './backends.ts';
import type { Tools } from './deps.ts';
import type { ClosedLoopResult, OpenLoopResult, StreamResult } from './load.ts';
import type { Percentiles } from './stats.ts';
import type { GrpcWebResult } from './grpc-web.ts';
import type { WebSocketResult } from './websocket.ts';

export interface Params {
  readonly mode: 'full' | 'quick' | 'smoke';
  readonly rounds: number;
  /** Open-loop arrival rate, RPC/s, for the latency and slow-backend runs. */
  readonly rate: number;
  readonly out: string;
  /** Another build's command (dist/bin/switchyard.js; dist/cli/main.js before the bundle), run as "switchyard-baseline" beside this one (--baseline-cli). */
  readonly baselineCli?: string;
  /** Closed loop: h2load -c/-m and duration. */
  readonly closedMs: number;
  readonly closedConnections: number;
  readonly closedStreams: number;
  readonly openMs: number;
  readonly openConnections: number;
  /** Slow-backend run: total length (the switch is at half), load before it, and the adaptation window reported apart. */
  readonly slowMs: number;
  readonly slowWarmupMs: number;
  readonly adaptMs: number;
  readonly slowDelayMs: number;
  /** Switchyard policies to put through the slow-backend run, and whether haproxy and nginx go through it too. */
  readonly slowPolicies: readonly string[];
  readonly slowProxies: boolean;
  /** Identical backends, sequential: how long RPCs are sent one at a time through peak_ewma (after as long a warm-up). */
  readonly sequentialMs: number;
  readonly streamMs: number;
  readonly streamWarmupMs: number;
  readonly streams: number;
  readonly streamConnections: number;
  readonly idleConnections: number;
  /** Pause before reading idle RSS (start-up garbage collected) and after opening the idle connections. */
  readonly settleMs: number;
  /** How long, over the whole run, the bench may wait for other processes' CPU load to pass (0: never probe), and how long one probe lasts. */
  readonly quietBudgetMs: number;
  readonly quietProbeMs: number;
}

/** Switchyard's policies for the slow-backend run; ring_hash is left out (see scenarios.ts). */
const POLICIES = ['round_robin', 'least_request', 'random', 'peak_ewma'];

export function paramsFor(mode: Params['mode'], overrides: { rounds?: number; rate?: number; out: string; baselineCli?: string }): Params {
  const base = {
    full: {
      rounds: 3, rate: 2000, closedMs: 5000, openMs: 5000, slowMs: 12_000, slowWarmupMs: 1000, adaptMs: 1000, slowPolicies: POLICIES, slowProxies: true, sequentialMs: 3000,
      streamMs: 5000, streamWarmupMs: 1000, streams: 1000, streamConnections: 10, idleConnections: 10_000, settleMs: 2000, quietBudgetMs: 90_000, quietProbeMs: 1000,
    },
    quick: {
      rounds: 1, rate: 2000, closedMs: 2000, openMs: 2000, slowMs: 6000, slowWarmupMs: 500, adaptMs: 1000, slowPolicies: POLICIES, slowProxies: true, sequentialMs: 2000,
      streamMs: 2000, streamWarmupMs: 500, streams: 1000, streamConnections: 10, idleConnections: 10_000, settleMs: 1000, quietBudgetMs: 10_000, quietProbeMs: 500,
    },
    // Tiny and light: goes through every part once for the test suite, measures nothing worth reading.
    smoke: {
      rounds: 1, rate: 500, closedMs: 500, openMs: 500, slowMs: 1000, slowWarmupMs: 0, adaptMs: 200, slowPolicies: ['peak_ewma'], slowProxies: false, sequentialMs: 300,
      streamMs: 500, streamWarmupMs: 200, streams: 100, streamConnections: 2, idleConnections: 200, settleMs: 300, quietBudgetMs: 0, quietProbeMs: 0,
    },
  }[mode];
  return {
    mode, ...base,
    rounds: overrides.rounds ?? base.rounds,
    rate: overrides.rate ?? base.rate,
    out: overrides.out,
    ...(overrides.baselineCli !== undefined && { baselineCli: overrides.baselineCli }),
    closedConnections: 4, closedStreams: 32, openConnections: 4, slowDelayMs: 50,
  };
}

export interface Context {
  readonly params: Params;
  readonly tools: Tools;
  readonly backends: readonly Backend[];
  /** The run's temp dir (configs, sample files); removed at the end. */
  readonly dir: string;
  readonly requestFile: string;
  log(line: string): void;
  /** Records a measurement that failed; the run goes on and exits 1 at the end. */
  fail(what: string, error: unknown): void;
  /** Before a measurement: waits (within the run's budget) until other processes leave the CPU alone. */
  quiet(): Promise<void>;
}

export interface ClosedSample extends ClosedLoopResult {
  /** CPU seconds of the target's process tree during the run. */
  cpuSeconds: number;
  cpuPer100k: number;
  /** RPCs the backends counted during the run (h2load's own counts do not look at grpc-status). */
  backendRpcs: number;
  /** Percent of backendRpcs per backend. */
  split: number[];
  /** Cores used by processes outside the bench during the run (interference.ts). */
  foreignCores: number;
}

export interface RoundSample {
  round: number;
  closed?: ClosedSample;
  open?: OpenLoopResult & { foreignCores: number };
}

export interface TargetResult {
  name: string;
  rounds: RoundSample[];
  /** VmHWM summed over the process tree after the rounds (the peak since it started). */
  peakRssMiB?: number;
}

export interface WindowStats {
  count: number;
  errors: number;
  latencyMs: Percentiles;
}

export interface SlowResult {
  target: string;
  policy: string;
  note?: string;
  switchAtMs?: number;
  before?: WindowStats;
  adapt?: WindowStats;
  after?: WindowStats;
  /** p99 after / p99 before. */
  ratio?: number;
  /** Percent of the RPCs after the adaptation window that went to the slow backend (the backends' own counters). */
  slowShareAfter?: number;
  foreignCores?: number;
}

/** Identical backends, one RPC in flight over one connection: how evenly a policy spreads them. */
export interface IdenticalResult {
  policy: string;
  /** RPCs each backend served in the measured window (its own counter). */
  perBackend?: number[];
  /** Busiest over least busy backend. */
  maxOverMin?: number;
  errors?: number;
  foreignCores?: number;
  note?: string;
}

export interface StreamRow {
  target: string;
  result?: StreamResult;
  /** The target's CPU use while streaming, percent of one core. */
  cpuPercent?: number;
  foreignCores?: number;
}

export interface MultiCoreResult {
  available: boolean;
  note: string;
  oneWorker: number[];
  twoWorkers: number[];
  /** Per round, the higher "other load" of its two runs. */
  foreignCores: number[];
  factor?: number;
}

export interface IdleMemoryResult {
  /** RSS of a bare Node process running a one-line timer from a .js file and from a .ts file (type stripping loads its own code). */
  nodeBaselineMiB?: { js: number; ts: number };
  idleRssMiB?: number;
  requested?: number;
  connections?: number;
  failed?: number;
  rssWithConnectionsMiB?: number;
  kibPerConnection?: number;
  note: string;
}

/** The TLS round: closed loop over TLS 1.3, per round. */
export interface TlsRow {
  target: string;
  rps: number[];
  cpuPer100k: number[];
  foreignCores: number[];
}

/** Switchyard's allocation and GC per RPC, from its own /metrics, per round. */
export interface AllocationResult {
  bytesPerRpc: number[];
  gcMsPer100k: number[];
  medianBytesPerRpc?: number;
  medianGcMsPer100k?: number;
}

export interface Results {
  meta: Record<string, unknown>;
  backendCheck?: ClosedLoopResult;
  targets: TargetResult[];
  streaming: StreamRow[];
  slow: SlowResult[];
  identical?: IdenticalResult;
  multiCore?: MultiCoreResult;
  idle?: IdleMemoryResult;
  /** The same idle-memory run on the --baseline-cli build. */
  idleBaseline?: IdleMemoryResult;
  tls?: TlsRow[];
  allocation?: AllocationResult;
  grpcWeb?: GrpcWebResult;
  websocket?: WebSocketResult;
  notes: string[];
  errors: string[];
}
