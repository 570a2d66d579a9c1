/**
 * Writes what deploy/monitoring/ ships that is generated: the Grafana dashboards (dashboards/*.json)
 * and the Prometheus Operator's PrometheusRule (prometheusrule.yaml), made from the plain rules file
 * rules/switchyard.rules.yaml so the two never differ. test/e2e/monitoring-files.test.ts checks the
 * committed files are what this writes.
 *
 *   npm run monitoring:generate
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { clustersDashboard } from './dashboards/clusters.ts';
import { controlPlaneDashboard } from './dashboards/control-plane.ts';
import { overviewDashboard } from './dashboards/overview.ts';
import { securityDashboard } from './dashboards/security.ts';

export const MONITORING_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const RULES_FILE = 'rules/switchyard.rules.yaml';

export const DASHBOARDS = {
  'dashboards/switchyard-overview.json': overviewDashboard,
  'dashboards/switchyard-clusters.json': clustersDashboard,
  'dashboards/switchyard-security.json': securityDashboard,
  'dashboards/switchyard-control-plane.json': controlPlaneDashboard,
} as const;

/** The PrometheusRule: the plain rules file's groups, unchanged, under spec. */
export function prometheusRule(rulesYaml: string): string {
  const rules = parse(rulesYaml) as { groups: unknown[] };
  const object = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'switchyard', namespace: 'switchyard', labels: { 'app.kubernetes.io/name': 'switchyard', 'app.kubernetes.io/component': 'monitoring' } },
    spec: { groups: rules.groups },
  };
  return `# Generated from ${RULES_FILE} by deploy/monitoring/generate/main.ts: edit that file, then npm run monitoring:generate.\n${stringify(object, { lineWidth: 0 })}`;
}

/** Relative path under deploy/monitoring/ → file content. */
export function generatedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const [file, build] of Object.entries(DASHBOARDS)) files.set(file, `${JSON.stringify(build(), null, 2)}\n`);
  files.set('prometheusrule.yaml', prometheusRule(readFileSync(path.join(MONITORING_DIR, RULES_FILE), 'utf8')));
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, content] of generatedFiles()) {
    writeFileSync(path.join(MONITORING_DIR, file), content);
    console.log(`wrote deploy/monitoring/${file}`);
  }
}
