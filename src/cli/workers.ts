/**
 * Runs the proxy in N worker processes that share its listening ports
 * (node:cluster: the primary accepts connections and hands each to a worker,
 * so one client connection, and all its RPCs, stays on one worker). Node runs
 * JavaScript on one core per process; this is how Switchyard uses more.
 */
import type { Worker } from 'node:cluster';
import pino from 'pino';
import { clusterModule } from '../builtins.ts';

/** A worker that dies is restarted, but not faster than this, so a crash loop cannot spin. */
const RESTART_DELAY_MS = 1_000;
/**
 * A worker exits at drain delay + drain timeout, plus the moment it takes to
 * close its clusters and flush its log. One that is still there this much
 * later is stuck, and is killed so the whole process exits in bounded time.
 */
const EXIT_SLACK_MS = 1_000;

export const DRAIN_MESSAGE = 'switchyard:drain-settings';
/** A worker's admin interface got POST /drain: the whole process drains, as on SIGTERM. */
export const DRAIN_REQUEST_MESSAGE = 'switchyard:drain-request';
/** Each worker's slot, 0 to N−1, kept by its replacement: the worker's admin port is the configured one plus it. */
const WORKER_INDEX_ENV = 'SWITCHYARD_WORKER_INDEX';

/** Sent by each worker after it starts and after every reload. */
export interface DrainMessage {
  readonly type: typeof DRAIN_MESSAGE;
  readonly delayMs: number;
  readonly timeoutMs: number;
}

export interface DrainSettings {
  readonly delay: number;
  readonly timeout: number;
}

/**
 * In the primary: forks `count` workers running the same command line and
 * restarts any that die. SIGHUP is passed on to every worker (each reloads
 * its config). On SIGTERM or SIGINT every worker is asked to drain; the
 * promise resolves once all have exited, or once the longest drain any worker
 * reported (`drain` until they report) has passed, when the rest are killed.
 * Workers never call this.
 */
export async function runWorkers(count: number, drain: DrainSettings): Promise<number> {
  const cluster = clusterModule();
  const logger = pino({ name: 'switchyard-primary' });
  const reported = new Map<number, DrainSettings>();
  const slots = new Map<number, number>();
  let stopping = false;
  const fork = (slot: number) => slots.set(cluster.fork({ [WORKER_INDEX_ENV]: String(slot) }).id, slot);
  for (let slot = 0; slot < count; slot++) fork(slot);

  cluster.on('message', (worker, message: unknown) => {
    if (isDrainMessage(message)) reported.set(worker.id, { delay: message.delayMs, timeout: message.timeoutMs });
    if (isDrainRequest(message) && !stopping) {
      logger.info({ worker: worker.process.pid }, 'POST /drain on a worker\'s admin interface: draining every worker');
      process.kill(process.pid, 'SIGTERM');
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    reported.delete(worker.id);
    const slot = slots.get(worker.id) ?? 0;
    slots.delete(worker.id);
    if (stopping) return;
    logger.error({ worker: worker.process.pid, code, signal }, 'worker exited; starting another');
    setTimeout(() => {
      if (!stopping) fork(slot);
    }, RESTART_DELAY_MS);
  });
  const liveWorkers = () => Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && !worker.isDead());

  process.on('SIGHUP', () => {
    if (stopping) return;
    logger.info({ workers: liveWorkers().length }, 'SIGHUP: asking every worker to reload its config');
    for (const worker of liveWorkers()) worker.process.kill('SIGHUP');
  });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (received: NodeJS.Signals) => {
      if (stopping) return logger.info({ signal: received }, 'already draining; signal ignored');
      stopping = true;
      resolve(received);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });

  const longest = [drain, ...reported.values()].reduce((a, b) => ({ delay: Math.max(a.delay, b.delay), timeout: Math.max(a.timeout, b.timeout) }));
  const deadlineMs = longest.delay + longest.timeout + EXIT_SLACK_MS;
  const workers = liveWorkers();
  logger.info({ signal, workers: workers.length, deadline_ms: deadlineMs }, 'draining workers');
  let killed = 0;
  const deadline = setTimeout(() => {
    for (const worker of liveWorkers()) {
      killed++;
      worker.process.kill('SIGKILL');
    }
    logger.error({ workers: killed }, 'workers still running after drain delay + drain timeout; killed');
  }, deadlineMs);
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve) => {
          worker.once('exit', () => resolve());
          if (worker.isDead()) return resolve();
          worker.process.kill('SIGTERM');
        }),
    ),
  );
  clearTimeout(deadline);
  logger.info('every worker has exited');
  return killed > 0 ? 1 : 0;
}

/** The slot variable is asked first: a single process never loads node:cluster. */
export const isWorkerProcess = (): boolean => process.env[WORKER_INDEX_ENV] !== undefined && clusterModule().isWorker;

/** In a worker: its slot (0 to N−1); undefined in a single process. */
export function workerIndex(): number | undefined {
  if (!isWorkerProcess()) return undefined;
  const slot = Number(process.env[WORKER_INDEX_ENV]);
  return Number.isInteger(slot) && slot >= 0 ? slot : 0;
}

function isDrainRequest(message: unknown): boolean {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === DRAIN_REQUEST_MESSAGE;
}

function isDrainMessage(message: unknown): message is DrainMessage {
  const candidate = message as Partial<DrainMessage> | null;
  return typeof candidate === 'object' && candidate !== null && candidate.type === DRAIN_MESSAGE
    && typeof candidate.delayMs === 'number' && typeof candidate.timeoutMs === 'number';
}
