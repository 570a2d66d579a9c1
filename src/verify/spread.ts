/**
 * spread: N unary RPCs over one connection, and which backend served each
 * (the proxy's x-switchyard-upstream header). An L7 balancer spreads them; a
 * per-connection one, or a cluster that lost all but one endpoint, does not.
 * Fails when fewer backends answered than expected, the busiest served
 * more than max_ratio times what the least busy did, or the backends answered
 * UNIMPLEMENTED (the method is not theirs, so the run shows nothing).
 */
import type { Progress } from './progress.ts';
import { formatCounts, type CheckResult } from './report.ts';
import { callUnary, statusName, targetClient, UPSTREAM_HEADER, type RpcSpec, type TargetOptions } from './target.ts';

export interface SpreadOptions {
  readonly target: TargetOptions;
  readonly rpc: RpcSpec;
  readonly requests: number;
  /** RPCs in flight at once, all on the one connection. */
  readonly concurrency: number;
  /** Fail when max/min of the per-backend counts exceeds this. */
  readonly maxRatio: number;
  /** Fail when fewer distinct backends answered. */
  readonly expectBackends: number;
}

export async function runSpread(options: SpreadOptions, progress: Progress): Promise<CheckResult> {
  const started = performance.now();
  progress.start('spread', `${options.requests} RPCs to ${options.rpc.method} over one connection to ${options.target.address}`);
  const client = await targetClient(options.target);
  const served = new Map<string, number>();
  /** Statuses the backends answered with (responses that carried x-switchyard-upstream). */
  const backendCodes = new Map<string, number>();
  /** Answers that carried no x-switchyard-upstream, by status. */
  const anonymous = new Map<string, number>();
  const failedCodes = new Map<string, number>();
  let firstFailure: string | undefined;
  let sent = 0;
  let done = 0;
  try {
    const worker = async () => {
      while (sent < options.requests) {
        sent++;
        const result = await callUnary(client, options.rpc);
        done++;
        if (result.upstream !== undefined) {
          served.set(result.upstream, (served.get(result.upstream) ?? 0) + 1);
          const name = statusName(result.code);
          backendCodes.set(name, (backendCodes.get(name) ?? 0) + 1);
        } else {
          const name = statusName(result.code);
          anonymous.set(name, (anonymous.get(name) ?? 0) + 1);
          if (result.code !== 0) {
            failedCodes.set(name, (failedCodes.get(name) ?? 0) + 1);
            firstFailure ??= `${name}: ${result.details}`;
          }
        }
        progress.update(`${done}/${options.requests} RPCs, ${served.size} backend(s) seen`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency, options.requests) }, worker));
  } finally {
    client.close();
  }
  progress.end();
  return spreadResult({ ...options, method: options.rpc.method }, { served, backendCodes, anonymous, failedCodes, firstFailure }, performance.now() - started);
}

/** What the RPCs of a spread run came back with. */
export interface SpreadCounts {
  /** Answers per backend (x-switchyard-upstream), whatever their status. */
  readonly served: ReadonlyMap<string, number>;
  /** Statuses of those answers, by name. */
  readonly backendCodes: ReadonlyMap<string, number>;
  /** Answers that carried no x-switchyard-upstream, by status. */
  readonly anonymous: ReadonlyMap<string, number>;
  /** Of those, the ones that were not OK. */
  readonly failedCodes: ReadonlyMap<string, number>;
  readonly firstFailure: string | undefined;
}

/** The verdict, from the counts alone (exported for unit tests). */
export function spreadResult(
  options: Pick<SpreadOptions, 'requests' | 'maxRatio' | 'expectBackends'> & { readonly method: string },
  { served, backendCodes, anonymous, failedCodes, firstFailure }: SpreadCounts,
  durationMs: number,
): CheckResult {
  const answered = [...served.values()].reduce((a, b) => a + b, 0);
  const withoutHeader = [...anonymous.values()].reduce((a, b) => a + b, 0);
  const failed = [...failedCodes.values()].reduce((a, b) => a + b, 0);
  const split = [...served].sort((a, b) => b[1] - a[1]);
  const max = split[0]?.[1] ?? 0;
  const min = split.at(-1)?.[1] ?? 0;
  const ratio = min > 0 ? max / min : undefined;
  const details = split.map(([backend, count]) => `${backend.padEnd(24)} ${String(count).padStart(6)}  ${(100 * count / options.requests).toFixed(1).padStart(5)}%  ${'#'.repeat(Math.round(40 * count / Math.max(1, max)))}`);
  if (withoutHeader > 0) details.push(`${withoutHeader} response(s) without ${UPSTREAM_HEADER}: ${formatCounts(anonymous)}`);
  if (firstFailure !== undefined) details.push(`first failure: ${firstFailure}`);
  const notOk = [...backendCodes].filter(([name]) => name !== 'OK');
  if (notOk.length > 0) details.push(`the backends answered: ${formatCounts(backendCodes)}`);
  const data = {
    requests: options.requests,
    backends: Object.fromEntries(split),
    without_upstream_header: withoutHeader,
    failures: Object.fromEntries(failedCodes),
    backend_statuses: Object.fromEntries(backendCodes),
    max_min_ratio: ratio === undefined ? null : Number(ratio.toFixed(3)),
    max_ratio: options.maxRatio,
    expect_backends: options.expectBackends,
  };
  const result = (passed: boolean, reason: string): CheckResult => ({ check: 'spread', passed, reason, details, data, durationMs });

  if (answered === 0 && failed === withoutHeader && failed > 0) {
    return result(false, `every RPC failed before reaching a backend: ${formatCounts(failedCodes)} (${firstFailure})`);
  }
  if (withoutHeader > 0 && answered === 0) {
    return result(false, `the proxy does not expose the upstream endpoint: enable it for verification with \`expose_upstream: true\` on the listener (docs/verify.md); no response carried ${UPSTREAM_HEADER}`);
  }
  if (failed > 0) {
    return result(false, `${failed} of ${options.requests} RPCs failed without reaching a backend: ${formatCounts(failedCodes)}`);
  }
  if (withoutHeader > 0) {
    return result(false, `${withoutHeader} of ${options.requests} responses lacked ${UPSTREAM_HEADER}: is every proxy replica behind the target set up with expose_upstream: true?`);
  }
  const unimplemented = backendCodes.get('UNIMPLEMENTED') ?? 0;
  if (unimplemented > 0) {
    // Counted evenly or not, these say nothing about balancing a real method, and the method is wrong.
    return result(false, `the backends do not implement ${options.method}: ${unimplemented} of ${options.requests} RPCs were answered UNIMPLEMENTED; give --method a unary method they serve`);
  }
  const splitText = split.map(([backend, count]) => `${backend} ${count}`).join(', ');
  if (served.size < options.expectBackends) {
    return result(false, `pinned: ${served.size === 1 ? 'one backend' : `only ${served.size} backends`} served all ${answered} RPCs (expected at least ${options.expectBackends}): ${splitText}`);
  }
  if (ratio! > options.maxRatio) {
    return result(false, `uneven: the busiest backend served ${ratio!.toFixed(2)}× the least busy (limit ${options.maxRatio}): ${splitText}`);
  }
  return result(true, `${answered} RPCs over ${served.size} backends, max/min ${ratio!.toFixed(2)} (limit ${options.maxRatio})`);
}
