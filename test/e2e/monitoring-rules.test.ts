/**
 * Switchyard's Prometheus alert rules (deploy/monitoring/rules/) checked by Prometheus' own promtool
 * (Debian's `prometheus` package): the plain rules file and the PrometheusRule's groups pass
 * `promtool check rules`, `promtool test rules` passes, every alert is tested both firing and not
 * firing, and every alert names a runbook section that exists in docs/observability.md.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { MONITORING_DIR, RULES_FILE } from '../../deploy/monitoring/generate/main.ts';

const PROMTOOL = process.env.PROMTOOL ?? 'promtool';
const promtoolMissing = spawnSync(PROMTOOL, ['--version'], { encoding: 'utf8' }).error !== undefined;
// CI installs promtool (.ci/run, Debian's prometheus); elsewhere a missing promtool skips, saying so.
const skip = promtoolMissing && process.env.CI !== 'true' ? `${PROMTOOL} not found: apt-get install prometheus (or set PROMTOOL)` : false;
const DOCS = path.resolve(MONITORING_DIR, '../../docs/observability.md');

interface Rule { alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
interface RuleTest { name: string; alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }

const readText = (file: string) => readFileSync(file, 'utf8');

function promtool(args: string[], cwd: string): string {
  const result = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8' });
  if (result.error) throw result.error;
  const output = `${result.stdout}${result.stderr}`;
  assert.equal(result.status, 0, `promtool ${args.join(' ')} failed:\n${output}`);
  return output;
}

/** GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as dashes. */
function anchors(markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/^#{1,6} +(.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')));
}

describe('alert rules', { skip }, () => {
  const rulesDir = path.join(MONITORING_DIR, 'rules');
  const rules = (): Rule[] => (parse(readText(path.join(MONITORING_DIR, RULES_FILE))) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'switchyard-rules-'));
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  test('promtool check rules accepts the rules file', () => {
    assert.match(promtool(['check', 'rules', 'switchyard.rules.yaml'], rulesDir), /SUCCESS: 9 rules found/);
  });

  test('the PrometheusRule carries exactly the rules file\'s groups, and promtool accepts them', async () => {
    const object = parse(await readFile(path.join(MONITORING_DIR, 'prometheusrule.yaml'), 'utf8')) as { kind: string; spec: { groups: unknown[] } };
    assert.equal(object.kind, 'PrometheusRule');
    assert.deepEqual(object.spec.groups, (parse(readText(path.join(MONITORING_DIR, RULES_FILE))) as { groups: unknown[] }).groups);
    await writeFile(path.join(scratch, 'from-prometheusrule.yaml'), JSON.stringify({ groups: object.spec.groups }));
    assert.match(promtool(['check', 'rules', 'from-prometheusrule.yaml'], scratch), /SUCCESS: 9 rules found/);
  });

  test('promtool test rules: every test passes', () => {
    assert.match(promtool(['test', 'rules', 'switchyard.rules.test.yaml'], rulesDir), /SUCCESS/);
  });

  test('promtool test rules is live: a wrong expectation fails', async () => {
    const tests = parse(readText(path.join(rulesDir, 'switchyard.rules.test.yaml'))) as { tests: RuleTest[]; rule_files: string[] };
    // Expect the circuit breaker alert where the series say it must stay quiet.
    const broken = structuredClone(tests);
    const quiet = broken.tests.flatMap((t) => t.alert_rule_test ?? []).find((a) => a.alertname === 'SwitchyardCircuitBreakerOpen' && (a.exp_alerts ?? []).length === 0)!;
    quiet.exp_alerts = [{ exp_labels: { severity: 'critical', job: 'switchyard', instance: 'p1', cluster: 'carts', limit: 'max_pending_requests' } }];
    broken.rule_files = [path.join(rulesDir, 'switchyard.rules.yaml')];
    await writeFile(path.join(scratch, 'broken.test.yaml'), JSON.stringify(broken));
    const result = spawnSync(PROMTOOL, ['test', 'rules', 'broken.test.yaml'], { cwd: scratch, encoding: 'utf8' });
    assert.notEqual(result.status, 0);
    assert.match(`${result.stdout}${result.stderr}`, /FAILED/);
  });

  test('every alert is tested firing and not firing', () => {
    const tests = (parse(readText(path.join(rulesDir, 'switchyard.rules.test.yaml'))) as { tests: RuleTest[] }).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    const untested: string[] = [];
    for (const { alert } of rules()) {
      const mine = cases.filter((c) => c.alertname === alert);
      if (!mine.some((c) => (c.exp_alerts ?? []).length > 0)) untested.push(`${alert}: never expected to fire`);
      if (!mine.some((c) => (c.exp_alerts ?? []).length === 0)) untested.push(`${alert}: never expected to stay quiet`);
    }
    assert.deepEqual(untested, []);
  });

  test('the issue\'s alerts are all there, each with a severity, a summary, a description and a runbook section in docs/observability.md', async () => {
    const names = rules().map((rule) => rule.alert);
    assert.deepEqual(names, [
      'SwitchyardHighErrorRatio', 'SwitchyardNoHealthyEndpoints', 'SwitchyardEndpointEjectedForLong', 'SwitchyardEndpointPinned',
      'SwitchyardCertificateExpiringSoon', 'SwitchyardXdsDisconnected', 'SwitchyardConfigReloadFailed',
      'SwitchyardRetryBudgetExhausted', 'SwitchyardCircuitBreakerOpen',
    ]);
    const sections = anchors(await readFile(DOCS, 'utf8'));
    for (const rule of rules()) {
      assert.match(rule.labels?.severity ?? '', /^(warning|critical)$/, `${rule.alert}: severity`);
      assert.ok(rule.annotations?.summary && rule.annotations.description, `${rule.alert}: summary and description`);
      const runbook = rule.annotations?.runbook ?? '';
      assert.equal(runbook, `docs/observability.md#${rule.alert.toLowerCase()}`, `${rule.alert}: runbook annotation`);
      assert.ok(sections.has(rule.alert.toLowerCase()), `docs/observability.md has no section "${rule.alert}"`);
    }
  });

  test('the local quick start\'s prometheus.yml is valid and loads the rules', () => {
    const output = promtool(['check', 'config', 'prometheus.yml'], path.join(MONITORING_DIR, 'local'));
    assert.match(output, /SUCCESS: prometheus\.yml is valid/);
    assert.match(output, /SUCCESS: 9 rules found/);
  });
});
