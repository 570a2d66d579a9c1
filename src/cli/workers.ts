/**
 * Runs the proxy in N worker processes that share its listening ports
 * (node:cluster: the primary accepts connections and hands each to a worker,
 * so one client connection, and all its RPCs, stays on one worker). Node runs
 * JavaScript on one core per process; this is how Switchyard uses more.
 */
import cluster from 'node:cluster';
import pino from 'pino';

/** A worker that dies is restarted, but not faster than this, so a crash loop cannot spin. */
const RESTART_DELAY_MS = 1_000;

/**
 * In the primary: forks `count` workers running the same command line, restarts
 * any that die, and on SIGTERM/SIGINT asks every worker to drain and resolves
 * once all have exited. Workers never call this.
 */
export async function runWorkers(count: number): Promise<number> {
  const logger = pino({ name: 'switchyard-primary' });
  let stopping = false;
  for (let i = 0; i < count; i++) cluster.fork();

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    logger.error({ worker: worker.process.pid, code, signal }, 'worker exited; starting another');
    setTimeout(() => {
      if (!stopping) cluster.fork();
    }, RESTART_DELAY_MS);
  });

  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  stopping = true;
  logger.info({ workers: Object.keys(cluster.workers ?? {}).length }, 'draining workers');
  const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          worker.once('exit', () => resolve());
          worker.process.kill('SIGTERM');
        }),
    ),
  );
  return 0;
}

export const isWorkerProcess = (): boolean => cluster.isWorker;
