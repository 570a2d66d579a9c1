/**
 * The optional monitoring component (deploy/monitoring, a kustomize Component) as the example overlay
 * deploy/overlays/production-monitored renders it with `kubectl kustomize`: every object validated
 * offline against its schema (the Prometheus Operator's CRDs for PodMonitor and PrometheusRule), the
 * proxy config it swaps in differs from the base only in the admin listener, the PodMonitor scrapes
 * that port, and (with the NetworkPolicy evaluator) only Prometheus in "monitoring" reaches it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import { DASHBOARDS, MONITORING_DIR, RULES_FILE } from '../../deploy/monitoring/generate/main.ts';
import {
  KUBECTL, containerPort, destinationOf, find, ingressAllowed, pod, render, schemaErrors, selects, skip as kubectlSkip, switchyardConfig,
  type K8sObject, type Pod,
} from '../helpers/kube-manifests.ts';

const OVERLAY = 'overlays/production-monitored';

/** kustomize understands `components` from v3.7; kubectl 1.20's embedded v2.0.3 does not. */
function componentsUnsupported(): string | false {
  if (kubectlSkip) return kubectlSkip;
  const version = /Kustomize Version: v?(\d+)\.(\d+)/.exec(spawnSync(KUBECTL, ['version', '--client'], { encoding: 'utf8' }).stdout ?? '');
  const supported = version !== null && (Number(version[1]) > 3 || (Number(version[1]) === 3 && Number(version[2]) >= 7));
  if (supported) return false;
  const reason = `${KUBECTL}'s kustomize is older than v3.7 and cannot render components`;
  if (process.env.CI === 'true') throw new Error(reason);
  return reason;
}

describe('deploy/monitoring: the optional monitoring component', { skip: componentsUnsupported() }, () => {
  const objects = () => render(OVERLAY);

  it('renders with kubectl kustomize, and every object validates against its schema (Prometheus Operator CRDs included)', async () => {
    const failures: string[] = [];
    for (const object of objects()) {
      const errors = await schemaErrors(object);
      if (errors) failures.push(`${object.kind} ${object.metadata.namespace ?? ''}/${object.metadata.name}: ${errors}`);
    }
    assert.deepEqual(failures, []);
    for (const [kind, name] of [['PodMonitor', 'switchyard'], ['PrometheusRule', 'switchyard'], ['NetworkPolicy', 'switchyard-admin-from-prometheus'], ['ConfigMap', 'switchyard-grafana-dashboards']]) {
      assert.equal(find(objects(), kind!, name!, 'switchyard').metadata.namespace, 'switchyard');
    }
  });

  it('the CRD validators are live: a wrongly typed PodMonitor field is refused', async () => {
    const monitor = structuredClone(find(objects(), 'PodMonitor', 'switchyard', 'switchyard'));
    monitor.spec.podMetricsEndpoints[0].path = 42;
    assert.match((await schemaErrors(monitor))!, /path/);
  });

  it('the proxy config differs from the base only in the admin listener, which listens on the pod address', () => {
    const scraped = switchyardConfig(objects());
    const base = parseConfig(readFileSync(path.join(MONITORING_DIR, '../base/switchyard.yaml'), 'utf8'), 'deploy/base/switchyard.yaml');
    assert.deepEqual({ ...scraped, admin: undefined }, { ...base, admin: undefined });
    assert.deepEqual({ address: scraped.admin?.address, port: scraped.admin?.port, allow_remote: scraped.admin?.allow_remote }, { address: '0.0.0.0', port: 9902, allow_remote: true });
    const deployment = find(objects(), 'Deployment', 'switchyard', 'switchyard');
    const volume = deployment.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'config');
    assert.equal(volume.configMap.name, find(objects(), 'ConfigMap', 'switchyard-config', 'switchyard').metadata.name, 'the Deployment mounts the replaced ConfigMap');
  });

  it('the PodMonitor scrapes /metrics on the admin container port of exactly the proxy pods, keeping Switchyard\'s endpoint label', () => {
    const config = switchyardConfig(objects());
    const monitor = find(objects(), 'PodMonitor', 'switchyard', 'switchyard');
    const deployment = find(objects(), 'Deployment', 'switchyard', 'switchyard');
    const backend = find(objects(), 'Deployment', 'echo', 'shop');
    assert.ok(selects(monitor.spec.selector, deployment.spec.template.metadata.labels));
    assert.ok(!selects(monitor.spec.selector, backend.spec.template.metadata.labels));
    const [scrape] = monitor.spec.podMetricsEndpoints;
    assert.equal(scrape.path, '/metrics');
    const container = deployment.spec.template.spec.containers.find((c: K8sObject) => c.name === 'switchyard');
    assert.equal(containerPort(container, scrape.port), config.admin!.port);
    assert.deepEqual(scrape.relabelings, [{ action: 'labeldrop', regex: 'endpoint' }]);

    const service = find(objects(), 'Service', 'switchyard', 'switchyard');
    const targets = service.spec.ports.map((p: { targetPort: string | number }) => containerPort(container, p.targetPort));
    assert.ok(!targets.includes(config.admin!.port), 'the Service still does not expose the admin port');
  });

  it('the PrometheusRule holds the rules file\'s groups', () => {
    const rule = find(objects(), 'PrometheusRule', 'switchyard', 'switchyard');
    const file = parse(readFileSync(path.join(MONITORING_DIR, RULES_FILE), 'utf8')) as { groups: unknown[] };
    assert.deepEqual(rule.spec.groups, file.groups);
  });

  it('the dashboards ConfigMap carries every dashboard, labelled for Grafana\'s sidecar', () => {
    const configMap = find(objects(), 'ConfigMap', 'switchyard-grafana-dashboards', 'switchyard');
    assert.equal(configMap.metadata.labels?.grafana_dashboard, '1');
    const expected = Object.fromEntries(Object.keys(DASHBOARDS).map((file) => [path.basename(file), readFileSync(path.join(MONITORING_DIR, file), 'utf8')]));
    assert.deepEqual(configMap.data, expected);
    // kubectl apply (client side) keeps the object in an annotation limited to 256 KiB.
    assert.ok(Buffer.byteLength(JSON.stringify(configMap)) < 200 * 1024, 'small enough for a client-side kubectl apply');
  });

  describe('NetworkPolicy: who reaches which port', () => {
    const policies = () => objects().filter((o) => o.kind === 'NetworkPolicy');
    const sources = {
      'prometheus in monitoring': pod('monitoring', { 'app.kubernetes.io/name': 'prometheus' }),
      'grafana in monitoring': pod('monitoring', { 'app.kubernetes.io/name': 'grafana' }),
      'kube-system': pod('kube-system', { component: 'kubelet-probe' }),
      'a prometheus elsewhere': pod('default', { 'app.kubernetes.io/name': 'prometheus' }),
      'a namespace pretending to be monitoring': pod('attacker', { 'app.kubernetes.io/name': 'prometheus' }, { name: 'monitoring', 'kubernetes.io/metadata.name': 'attacker' }),
      'another pod in switchyard': pod('switchyard', { app: 'debug' }),
    } satisfies Record<string, Pod>;
    const reachable = (port: number) => {
      const dest = destinationOf(find(objects(), 'Deployment', 'switchyard', 'switchyard'), port);
      return Object.entries(sources).filter(([, source]) => ingressAllowed(policies(), source, dest)).map(([name]) => name).sort();
    };

    it('the admin port: Prometheus in the monitoring namespace only', () => {
      assert.deepEqual(reachable(switchyardConfig(objects()).admin!.port), ['prometheus in monitoring']);
    });

    it('the health port is unchanged: kube-system and monitoring', () => {
      assert.deepEqual(reachable(switchyardConfig(objects()).health!.port), ['grafana in monitoring', 'kube-system', 'prometheus in monitoring']);
    });

    it('the gRPC port is unchanged: every client', () => {
      assert.deepEqual(reachable(8443), Object.keys(sources).sort());
    });
  });
});
