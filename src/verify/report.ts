/**
 * What a check found, and the report `switchyard verify` prints: a table with
 * PASS or FAIL and a one-line reason per check, the details of each check
 * below it, and a summary line; or the same as JSON (`--json`).
 */

export type CheckName = 'spread' | 'health' | 'rollout' | 'xds' | 'gateway';
export const CHECK_NAMES: readonly CheckName[] = ['spread', 'health', 'rollout', 'xds', 'gateway'];

export interface CheckResult {
  readonly check: CheckName;
  readonly passed: boolean;
  /** One line: why it passed or failed. */
  readonly reason: string;
  /** Further lines for the human report (the split, each probe, each status code). */
  readonly details: readonly string[];
  /** Machine-readable findings, for `--json`. */
  readonly data: Record<string, unknown>;
  readonly durationMs: number;
}

export interface VerifyReport {
  readonly passed: boolean;
  readonly checks: readonly CheckResult[];
}

export function reportOf(checks: readonly CheckResult[]): VerifyReport {
  return { passed: checks.every((check) => check.passed), checks };
}

export function formatReport(report: VerifyReport): string {
  const rows = report.checks.map((check) => [check.check, check.passed ? 'PASS' : 'FAIL', `${(check.durationMs / 1000).toFixed(1)}s`, check.reason]);
  const titles = ['CHECK', 'RESULT', 'TIME', 'REASON'];
  const widths = titles.map((title, i) => Math.max(title.length, ...rows.map((row) => i === 3 ? 0 : row[i]!.length)));
  const line = (cells: readonly string[]) => `${cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()}\n`;
  let out = line(titles) + rows.map(line).join('');
  for (const check of report.checks) {
    if (check.details.length === 0) continue;
    out += `\n${check.check}:\n${check.details.map((detail) => `  ${detail}\n`).join('')}`;
  }
  const failed = report.checks.filter((check) => !check.passed).length;
  out += `\n${failed === 0 ? `verify: PASS (${report.checks.length} check${report.checks.length === 1 ? '' : 's'})` : `verify: FAIL (${failed} of ${report.checks.length} checks failed: ${report.checks.filter((c) => !c.passed).map((c) => c.check).join(', ')})`}\n`;
  return out;
}

export function formatReportJson(report: VerifyReport): string {
  return `${JSON.stringify({
    passed: report.passed,
    checks: report.checks.map((check) => ({ check: check.check, result: check.passed ? 'pass' : 'fail', reason: check.reason, duration_ms: Math.round(check.durationMs), ...check.data })),
  }, null, 2)}\n`;
}

/** "UNAVAILABLE ×3, INTERNAL ×1", most frequent first. */
export function formatCounts(counts: ReadonlyMap<string, number>): string {
  return [...counts].sort((a, b) => b[1] - a[1]).map(([name, count]) => `${name} ×${count}`).join(', ');
}
