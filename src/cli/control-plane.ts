/**
 * `switchyard control-plane --config FILE`: serves xDS until SIGTERM or
 * SIGINT, then ends every stream with UNAVAILABLE (clients reconnect, to
 * another replica if there is one) and exits 0. SIGHUP reloads the config
 * file: clusters, routes, listeners, rules, limits and the TLS files take
 * effect without ending a stream; a bad file is logged and the running
 * config stays. Endpoints follow their sources live.
 */
import pino from 'pino';
import { loadControlPlaneConfig } from '../xds/control-plane/load.ts';
import { startControlPlane, type ControlPlane } from '../xds/control-plane/control-plane.ts';

export async function runControlPlane(configFile: string): Promise<number> {
  // Installed before anything starts: without a handler SIGHUP ends the process (exit 129).
  let hangups = 0;
  let onHangup: (() => void) | undefined;
  const hangup = () => (onHangup ? onHangup() : hangups++);
  process.on('SIGHUP', hangup);
  const terminated = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });

  const loaded = await loadControlPlaneConfig(configFile);
  const logger = pino({ level: loaded.config.log_level });
  const controlPlane = await startControlPlane(loaded, logger);

  let reloads = Promise.resolve();
  onHangup = () => {
    reloads = reloads.then(() => reload(controlPlane, configFile, logger));
  };
  if (hangups > 0) onHangup();

  const signal = await terminated;
  process.off('SIGHUP', hangup);
  logger.info({ signal }, 'shutting down: ending every xDS stream');
  await controlPlane.close();
  logger.info('control plane stopped');
  return 0;
}

async function reload(controlPlane: ControlPlane, configFile: string, logger: pino.Logger): Promise<void> {
  logger.info({ reason: 'SIGHUP', file: configFile }, 'reloading the config');
  try {
    const summary = controlPlane.reload(await loadControlPlaneConfig(configFile));
    logger.info({ reason: 'SIGHUP', clusters: summary.clusters, tls_changed: summary.tlsChanged }, 'config reloaded');
    if (summary.needRestart.length > 0) {
      logger.warn({ sections: summary.needRestart }, 'these sections changed but take effect only after a restart; they are kept as they were');
    }
  } catch (error) {
    // A ConfigError's message names the file and every problem with its path and line.
    logger.error({ reason: 'SIGHUP', error: (error as Error).message }, 'config reload rejected; the running config stays in force');
  }
}
