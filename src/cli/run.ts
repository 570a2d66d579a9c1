/**
 * `switchyard run`: one proxy process from start to exit.
 *
 *   SIGTERM, SIGINT  drain (see Switchyard.drain) and exit 0
 *   SIGHUP           reload the config file; a bad one is logged and ignored
 *   file change      the same, with `watch_config: true` (the config and every
 *                    TLS file it names)
 *
 * In a worker of `--workers N` the primary forwards these signals, and hears
 * the drain settings in force so it knows how long to wait.
 */
import type { LoadedConfig } from '../config/config-files.ts';
import { loadConfigIsolated } from '../config/isolated-load.ts';
import { onWatchedFilesChanged, watchConfigFiles, type ConfigWatcher } from '../lifecycle/config-watcher.ts';
import { defaultReserve, openFileLimit } from '../security/open-files.ts';
import { watchCertificates, type CertificateWatcher } from '../lifecycle/cert-rotation.ts';
import { Switchyard } from '../switchyard.ts';
import type { SwitchyardConfig } from '../config/schema.ts';
import { DRAIN_MESSAGE, DRAIN_REQUEST_MESSAGE, isWorkerProcess, workerIndex, type DrainMessage } from './workers.ts';

type ReloadReason = 'SIGHUP' | 'file change';

/** Runs the proxy until SIGTERM or SIGINT, then drains it. Resolves with the exit code. */
export async function runProxy(configFile: string, loaded: LoadedConfig): Promise<number> {
  // Installed before anything starts: without a handler SIGTERM and SIGHUP kill the process outright.
  let proxy: Switchyard | undefined;
  let terminate!: (signal: NodeJS.Signals) => void;
  const terminated = new Promise<NodeJS.Signals>((resolve) => { terminate = resolve; });
  let stopping: NodeJS.Signals | undefined;
  const onTerminate = (signal: NodeJS.Signals) => {
    if (stopping) {
      proxy?.logger.info({ signal }, 'already draining; signal ignored');
      return;
    }
    stopping = signal;
    terminate(signal);
  };
  let hangup: (() => void) | undefined;
  let hangupBeforeStart = false;
  process.on('SIGTERM', onTerminate);
  process.on('SIGINT', onTerminate);
  process.on('SIGHUP', () => (hangup ? hangup() : (hangupBeforeStart = true)));

  const running = await Switchyard.start({
    config: perWorker(loaded.config),
    secrets: loaded.secrets,
    // POST /drain on the admin interface: the same as SIGTERM, so the process exits once drained.
    // A worker asks the primary, which drains every worker; draining alone, it would just be restarted.
    onDrainRequest: () => (isWorkerProcess() && process.send ? process.send({ type: DRAIN_REQUEST_MESSAGE }) : onTerminate('SIGTERM')),
  });
  proxy = running;
  reportDrainSettings(running);
  logOpenFileLimit(running);

  let watcher: ConfigWatcher | undefined;
  const syncWatcher = async (files: readonly string[]) => {
    if (stopping) return;
    if (!running.config.watch_config) {
      watcher?.close();
      watcher = undefined;
    } else if (watcher) {
      await watcher.setFiles(files);
    } else {
      watcher = await watchConfigFiles(files, (change) => reload('file change', change.files));
      running.logger.info({ files }, 'watching the config and the files it names for changes');
    }
  };

  let certificates: CertificateWatcher | undefined;
  let reloads: Promise<void> = Promise.resolve();
  const reload = (reason: ReloadReason, changed?: readonly string[]) => {
    reloads = reloads
      .then(() => reloadOnce(running, configFile, { reason, ...(changed && { changed }) }, syncWatcher))
      .then(() => certificates?.sync())
      .catch((error: unknown) => running.logger.error({ reason, error: (error as Error).message }, 'config reload failed'));
    return reloads;
  };
  hangup = () => {
    if (!stopping) void reload('SIGHUP');
  };
  // Both watchers (the config's and the certificates') say what they saw and why they looked now.
  const stopLoggingChanges = onWatchedFilesChanged(({ files, cause, waitedMs }) => {
    running.logger.info({ files, waited_ms: waitedMs, cause }, cause === 'quiet'
      ? 'watched files changed'
      : 'watched files changed (still being written; compared at the bound after the first change)');
  });
  await syncWatcher(loaded.files);
  // Always on: rotated certificates are taken without a config reload (see docs/security.md).
  certificates = await watchCertificates(running);
  if (hangupBeforeStart) hangup();

  const signal = await terminated;
  running.logger.info({ signal }, 'shutting down');
  watcher?.close();
  certificates?.close();
  stopLoggingChanges();
  await running.drain();
  return 0;
}

/** What prompted a reload: the reason, and for a file change the files whose contents changed. */
interface ReloadTrigger {
  readonly reason: ReloadReason;
  readonly changed?: readonly string[];
}

async function reloadOnce(proxy: Switchyard, configFile: string, { reason, changed }: ReloadTrigger, syncWatcher: (files: readonly string[]) => Promise<void>): Promise<void> {
  proxy.logger.info({ reason, file: configFile, ...(changed && { changed }) }, 'reloading the config');
  let loaded: LoadedConfig;
  try {
    loaded = await loadConfigIsolated(configFile);
  } catch (error) {
    // The ConfigError message lists every problem with its path and line.
    proxy.logger.error({ reason, error: (error as Error).message }, 'config reload rejected; the running config stays in force');
    proxy.reportReloadFailure('config', (error as Error).message);
    return;
  }
  try {
    await proxy.reload({ ...loaded, config: perWorker(loaded.config) });
  } catch (error) {
    proxy.logger.error({ reason, error: (error as Error).message }, 'config reload rejected; the running config stays in force');
    // The files may have changed even so: keep watching what the file now names.
    await syncWatcher(loaded.files);
    return;
  }
  reportDrainSettings(proxy);
  await syncWatcher(loaded.files);
}

/**
 * Workers share the serving and health ports, but each has its own admin
 * interface: its metrics and endpoints are its own, and a scrape that landed
 * on a random worker would make counters jump. Worker i takes admin.port + i.
 */
function perWorker(config: SwitchyardConfig): SwitchyardConfig {
  const slot = workerIndex();
  if (slot === undefined || !config.admin || config.admin.port === 0) return config;
  return { ...config, admin: { ...config.admin, port: config.admin.port + slot } };
}

/** Tells the primary of --workers how long this worker may take to drain. */
function reportDrainSettings(proxy: Switchyard): void {
  if (!isWorkerProcess() || !process.send || !process.connected) return;
  const message: DrainMessage = { type: DRAIN_MESSAGE, delayMs: proxy.config.drain.delay, timeoutMs: proxy.config.drain.timeout };
  // Best effort: a primary that is gone needs no report.
  process.send(message, undefined, {}, () => {});
}

/**
 * Node raised the soft open-file limit to the hard one when it started; this
 * says what the limit is, since every connection costs a descriptor.
 */
function logOpenFileLimit(proxy: Switchyard): void {
  const limit = openFileLimit();
  if (!limit) return;
  const fields = { soft: limit.soft, hard: limit.hard, health_reserve: defaultReserve(limit.soft) };
  if (limit.soft < limit.hard) proxy.logger.warn(fields, 'the open-file limit is below its hard limit; raise it (ulimit -n, LimitNOFILE) to accept more connections');
  else proxy.logger.info(fields, 'open-file limit');
}
