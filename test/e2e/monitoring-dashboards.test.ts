/**
 * The Grafana dashboards and alert rules under deploy/monitoring/ read only metrics that exist: a
 * real control plane (static cluster, mTLS) feeds a real proxy over xDS, RPCs flow through it, and
 * every metric name in every panel's PromQL and every alert expression must be on the proxy's or
 * the control plane's /metrics page; every label a query filters or groups by must be on that
 * metric's samples (or be one Prometheus attaches to the target).

 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { parse } from 'yaml';
import { startEchoServer, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { controlPlaneSchema } from '../../src/xds/control-plane/control-plane-schema.ts';
import { startControlPlane, type ControlPlane } from '../../src/xds/control-plane/control-plane.ts';
import { readTlsFiles } from '../../src/xds/control-plane/load.ts';
import { DASHBOARDS, MONITORING_DIR, RULES_FILE } from '../../deploy/monitoring/generate/main.ts';
import { adminUrl } from '../helpers/admin.ts';
import { issueIdentity, makeTestPki, type TestPki } from '../helpers/certs.ts';
import { echoClient, expectStatus, unary, waitFor, type EchoClient } from '../helpers/harness.ts';
import { analyseQuery, parseExposition, type Exposition } from '../helpers/promql.ts';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';

/** Labels Prometheus (and the Prometheus Operator's PodMonitor) attach to every scraped series. */
const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod', 'container', 'service']);

interface Expression { readonly where: string; readonly expr: string }

function dashboardExpressions(): Expression[] {
  const found: Expression[] = [];
  for (const file of Object.keys(DASHBOARDS)) {
    const dashboard = JSON.parse(readFileSync(path.join(MONITORING_DIR, file), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[]; templating: { list: { name: string; query?: unknown }[] } };
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) found.push({ where: `${file}: panel "${panel.title}"`, expr: target.expr });
    }
    for (const variable of dashboard.templating.list) {
      const query = typeof variable.query === 'string' ? /^label_values\((.*), *\w+\)$/.exec(variable.query)?.[1] : undefined;
      if (query) found.push({ where: `${file}: variable $${variable.name}`, expr: query });
    }
  }
  return found;
}

function ruleExpressions(): Expression[] {
  const rules = parse(readFileSync(path.join(MONITORING_DIR, RULES_FILE), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  return rules.groups.flatMap((group) => group.rules.map((rule) => ({ where: `${RULES_FILE}: ${rule.alert}`, expr: rule.expr })));
}

describe('dashboards and alerts read only metrics a live proxy and control plane export', () => {
  let pki: TestPki;
  let backends: EchoServerHandle[];
  let controlPlane: ControlPlane;
  let proxy: SecureProxy;
  let client: EchoClient;
  let exported: Exposition;
  const expressions = [...dashboardExpressions(), ...ruleExpressions()];

  before(async () => {
    pki = await makeTestPki();
    const identity = await issueIdentity(pki, 'proxy', { subject: '/CN=proxy', san: 'URI:spiffe://test/proxy' });
    backends = await Promise.all([0, 1].map((i) => startEchoServer({ name: `backend-${i}` })));
    const config = controlPlaneSchema.parse({
      server: { address: '127.0.0.1', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.caCert } },
      admin: { port: 0 },
      clusters: [{ name: 'echo', endpoints: backends.map((backend) => ({ address: '127.0.0.1', port: backend.port })) }],
      route_configs: [{ name: 'main', routes: [{ match: { prefix: '/' }, cluster: 'echo' }] }],
      listeners: [{ name: 'echo', route_config: 'main' }],
      authorization: { identities: [{ identity: 'spiffe://test/proxy', node_ids: ['proxy-*'], clusters: ['*'], listeners: ['*'] }] },
      debounce: '10ms',
    });
    controlPlane = await startControlPlane(await readTlsFiles(config, '/', '(test control plane)'), pino({ level: 'silent' }));
    proxy = await startSecureProxy({
      listeners: [{ name: 'main', port: 0, plaintext: true }],
      admin: { port: 0 },
      xds: {
        server: `localhost:${controlPlane.port}`,
        tls: { ca_file: pki.caCert, cert_file: identity.cert, key_file: identity.key },
        node_id: 'proxy-1',
        route_config: 'main',
      },
      drain: { delay: '1ms', timeout: '2s' },
    });
    await waitFor(() => proxy.proxy.clusters.get('echo')?.endpoints.size === 2, 'the proxy to learn both endpoints over xDS');
    client = echoClient(`127.0.0.1:${proxy.port}`);
    for (let i = 0; i < 20; i++) await unary(client, { payload: Buffer.from('hello') });
    for (let i = 0; i < 3; i++) await expectStatus(unary(client, { fail_code: grpc.status.UNAVAILABLE, fail_message: 'made to fail' }));

    const page = async (url: string) => {
      const response = await fetch(url);
      assert.equal(response.status, 200, `${url} answered ${response.status}`);
      return response.text();
    };
    exported = parseExposition(await page(adminUrl(proxy.proxy, '/metrics')));
    const cpAdmin = controlPlane.adminAddress!;
    parseExposition(await page(`http://127.0.0.1:${cpAdmin.port}/metrics`), exported);
  });

  after(async () => {
    client?.close();
    await proxy?.close();
    await controlPlane?.close(0);
    await Promise.all((backends ?? []).map((backend) => backend.close()));
    await pki?.cleanup();
  });

  test('there are dashboards and alert expressions to check, and each parses as PromQL', () => {
    assert.equal(Object.keys(DASHBOARDS).length, 4);
    assert.ok(expressions.length > 60, `only ${expressions.length} expressions found`);
    const failures = expressions.flatMap(({ where, expr }) => analyseQuery(expr).errors.map((error) => `${where}: ${error} in ${expr}`));
    assert.deepEqual(failures, []);
  });

  test('the checker is live: a misspelt metric and a query that does not parse are caught', () => {
    assert.deepEqual([...analyseQuery('sum(rate(grpc_server_handeld_total[$__rate_interval]))').metrics], ['grpc_server_handeld_total']);
    assert.ok(!exported.series.has('grpc_server_handeld_total'));
    assert.notDeepEqual(analyseQuery('sum by (route (rate(x[5m]))').errors, []);
    assert.deepEqual([...analyseQuery('{__name__="switchyard_ready"}').metrics], ['switchyard_ready']);
  });

  test('every metric name exists on a live /metrics page', () => {
    const missing: string[] = [];
    for (const { where, expr } of expressions) {
      for (const metric of analyseQuery(expr).metrics) {
        if (!exported.series.has(metric)) missing.push(`${where}: ${metric}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  test('every label a query filters or groups by is on the metric\'s samples', (t) => {
    const missing = new Set<string>();
    const unchecked = new Set<string>();
    const labelled = (metric: string, label: string) => {
      const labels = exported.series.get(metric);
      if (!labels) return true;
      if (exported.withoutSamples.has(metric)) { unchecked.add(metric); return true; }
      return labels.has(label) || TARGET_LABELS.has(label) || (label === 'le' && metric.endsWith('_bucket'));
    };
    for (const { where, expr } of expressions) {
      const use = analyseQuery(expr);
      for (const [metric, labels] of use.matcherLabels) {
        for (const label of labels) {
          if (!labelled(metric, label)) missing.add(`${where}: ${metric} has no label ${label}`);
        }
      }
      for (const { labels, metrics } of use.groupings) {
        for (const label of labels) {
          const onSome = metrics.some((metric) => labelled(metric, label));
          if (!onSome) missing.add(`${where}: none of ${metrics.join(', ')} has label ${label}`);
        }
      }
    }
    if (unchecked.size > 0) t.diagnostic(`labels not checked (no samples in this run): ${[...unchecked].sort().join(', ')}`);
    assert.deepEqual([...missing], []);
  });
});
