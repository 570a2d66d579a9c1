/**
 * `switchyard control-plane --config FILE`: serves xDS until SIGTERM or
 * SIGINT, then ends every stream with UNAVAILABLE (clients reconnect, to
 * another replica if there is one) and exits 0. To change clusters or
 * routes, restart replicas one at a time: clients keep their last config
 * while they reconnect. Endpoints follow their sources live.
 */
import pino from 'pino';
import { loadControlPlaneConfig } from '../xds/control-plane/load.ts';
import { startControlPlane } from '../xds/control-plane/control-plane.ts';

export async function runControlPlane(configFile: string): Promise<number> {
  const loaded = await loadControlPlaneConfig(configFile);
  const logger = pino({ level: loaded.config.log_level });
  const controlPlane = await startControlPlane(loaded, logger);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  logger.info({ signal }, 'shutting down: ending every xDS stream');
  await controlPlane.close();
  logger.info('control plane stopped');
  return 0;
}
