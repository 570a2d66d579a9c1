/**
 * Graceful shutdown for a grpc-js service behind balancers that health-check it:
 *
 *   signal → not_serving → drain_wait (drainDelayMs) → stop_accepting → drained | forced → stopped
 *
 * NOT_SERVING first, so health checkers (Switchyard's, kubelet's readiness) take the replica out
 * while it still serves everything it is sent; only after the drain delay does the server stop
 * accepting (grpc-js tryShutdown: listeners closed, GOAWAY, in-flight RPCs finish). Whatever is
 * still running at deadlineMs after the signal is cancelled (forceShutdown).
 */
import type * as grpc from '@grpc/grpc-js';
import type { HealthServer } from './health-server.ts';

export type ShutdownStep = 'not_serving' | 'drain_wait' | 'stop_accepting' | 'drained' | 'forced' | 'stopped';

export interface ShutdownEvent {
  readonly step: ShutdownStep;
  /** Milliseconds since the shutdown began. */
  readonly atMs: number;
  readonly reason?: string;
}

/** pino fits; so does anything with these two methods. */
export interface ShutdownLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface GracefulShutdownOptions {
  readonly server: grpc.Server;
  /** Its every service is set NOT_SERVING first, and it is closed last. */
  readonly health?: HealthServer;
  /** How long to keep serving after NOT_SERVING, so health checkers notice. Default 5 s. */
  readonly drainDelayMs?: number;
  /** From the signal: in-flight RPCs still running then are cancelled. Must exceed drainDelayMs. Default 25 s. */
  readonly deadlineMs?: number;
  /** Default: JSON lines on stdout. */
  readonly logger?: ShutdownLogger;
  /** Signals that start the shutdown; a second one forces it. Default SIGTERM and SIGINT; [] for none. */
  readonly signals?: readonly NodeJS.Signals[];
  /**
   * Exit the process once stopped: code 0, or 1 when RPCs had to be cancelled. Default false.
   * With pino, log to a synchronous destination (pino.destination({ sync: true })): an
   * asynchronous one can lose or reorder the last lines at process.exit.
   */
  readonly exit?: boolean;
  /** Called for each step as it happens. */
  readonly onStep?: (event: ShutdownEvent) => void;
}

export interface ShutdownResult {
  /** True when the deadline (or a second signal) cancelled RPCs still in flight. */
  readonly forced: boolean;
  readonly events: readonly ShutdownEvent[];
}

export interface GracefulShutdown {
  /** The steps so far, in order. */
  readonly events: readonly ShutdownEvent[];
  /** Starts the shutdown (as a signal would); every call returns the same promise. */
  shutdown(reason?: string): Promise<ShutdownResult>;
  /** Removes the signal handlers (a shutdown already under way continues). */
  dispose(): void;
}

export const SHUTDOWN_DEFAULTS = { drainDelayMs: 5_000, deadlineMs: 25_000 } as const;

const MESSAGES: Record<ShutdownStep, string> = {
  not_serving: 'shutdown: NOT_SERVING',
  drain_wait: 'shutdown: waiting for the drain delay',
  stop_accepting: 'shutdown: stop accepting, finishing in-flight RPCs',
  drained: 'shutdown: in-flight RPCs finished',
  forced: 'shutdown: deadline reached, forced',
  stopped: 'shutdown: stopped',
};

const jsonLogger: ShutdownLogger = {
  info: (fields, msg) => process.stdout.write(`${JSON.stringify({ level: 'info', time: Date.now(), ...fields, msg })}\n`),
  warn: (fields, msg) => process.stdout.write(`${JSON.stringify({ level: 'warn', time: Date.now(), ...fields, msg })}\n`),
};

export function gracefulShutdown(options: GracefulShutdownOptions): GracefulShutdown {
  const drainDelayMs = options.drainDelayMs ?? SHUTDOWN_DEFAULTS.drainDelayMs;
  const deadlineMs = options.deadlineMs ?? SHUTDOWN_DEFAULTS.deadlineMs;
  if (!(drainDelayMs >= 0)) throw new RangeError(`drainDelayMs must be ≥ 0, got ${drainDelayMs}`);
  if (!(deadlineMs > drainDelayMs)) throw new RangeError(`deadlineMs (${deadlineMs}) must exceed drainDelayMs (${drainDelayMs})`);
  const logger = options.logger ?? jsonLogger;
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const events: ShutdownEvent[] = [];
  const force = new AbortController();
  let startedAt = 0;
  let running: Promise<ShutdownResult> | undefined;

  const record = (step: ShutdownStep, fields: Record<string, unknown> = {}) => {
    const event: ShutdownEvent = { step, atMs: Math.round(performance.now() - startedAt), ...(typeof fields.reason === 'string' && { reason: fields.reason }) };
    events.push(event);
    (step === 'forced' ? logger.warn : logger.info).call(logger, { step, at_ms: event.atMs, ...fields }, MESSAGES[step]);
    options.onStep?.(event);
  };

  const forceNow = (reason: string) => {
    if (force.signal.aborted) return;
    record('forced', { reason });
    options.server.forceShutdown();
    force.abort();
  };

  const run = async (reason: string): Promise<ShutdownResult> => {
    startedAt = performance.now();
    record('not_serving', { reason, drain_delay_ms: drainDelayMs, deadline_ms: deadlineMs });
    options.health?.setAllNotServing();
    const deadline = setTimeout(() => forceNow('deadline'), deadlineMs);
    try {
      record('drain_wait', { drain_delay_ms: drainDelayMs });
      await abortableSleep(drainDelayMs, force.signal);
      if (!force.signal.aborted) {
        record('stop_accepting');
        await new Promise<void>((resolve) => {
          options.server.tryShutdown(() => resolve());
          force.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        if (!force.signal.aborted) record('drained');
      }
    } finally {
      clearTimeout(deadline);
    }
    await options.health?.close();
    const forced = force.signal.aborted;
    record('stopped', { forced });
    dispose();
    if (options.exit) process.exit(forced ? 1 : 0);
    return { forced, events };
  };

  const shutdown = (reason = 'requested') => (running ??= run(reason));

  const onSignal = (signal: NodeJS.Signals) => {
    if (running) forceNow(`second ${signal}`);
    else void shutdown(signal);
  };
  for (const signal of signals) process.on(signal, onSignal);
  const dispose = () => {
    for (const signal of signals) process.off(signal, onSignal);
  };

  return { events, shutdown, dispose };
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
