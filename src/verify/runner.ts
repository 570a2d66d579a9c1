/**
 * Runs the selected checks one after another (rollout last: it waits for the
 * user's rollout) and gathers the report. A check that cannot run at all (an
 * unreadable CA file, say) fails with why, rather than ending the others.
 */
import { runControlPlane, type ControlPlaneOptions } from './control-plane.ts';
import { runGatewayCheck, type GatewayCheckOptions } from './gateway-status.ts';
import { runHealthExposure, type HealthExposureOptions } from './health-exposure.ts';
import type { Progress } from './progress.ts';
import { reportOf, type CheckName, type CheckResult, type VerifyReport } from './report.ts';
import { runRollout, type RolloutOptions } from './rollout.ts';
import { runSpread, type SpreadOptions } from './spread.ts';

export interface VerifyOptions {
  readonly spread?: SpreadOptions | undefined;
  readonly health?: HealthExposureOptions | undefined;
  readonly xds?: ControlPlaneOptions | undefined;
  readonly rollout?: RolloutOptions | undefined;
  readonly gateway?: GatewayCheckOptions | undefined;
}

export async function runVerify(options: VerifyOptions, progress: Progress): Promise<VerifyReport> {
  const checks: CheckResult[] = [];
  const run = async (check: CheckName, body: () => Promise<CheckResult>) => {
    const started = performance.now();
    try {
      checks.push(await body());
    } catch (error) {
      progress.end();
      checks.push({ check, passed: false, reason: `could not run: ${(error as Error).message}`, details: [], data: {}, durationMs: performance.now() - started });
    }
  };
  if (options.spread) await run('spread', () => runSpread(options.spread!, progress));
  if (options.health) await run('health', () => runHealthExposure(options.health!, progress));
  if (options.xds) await run('xds', () => runControlPlane(options.xds!, progress));
  if (options.gateway) await run('gateway', () => runGatewayCheck(options.gateway!, progress));
  if (options.rollout) await run('rollout', () => runRollout(options.rollout!, progress));
  return reportOf(checks);
}
