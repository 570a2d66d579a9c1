/**
 * Rendering and checking the Kubernetes manifests under deploy/: `kubectl kustomize`, schema validation
 * with the kubernetes-models validators (offline; CRDs from @kubernetes-models/cert-manager,
 * @kubernetes-models/prometheus-operator and @kubernetes-models/gateway-api), and a small NetworkPolicy evaluator. Shared by
 * test/e2e/deploy-manifests.test.ts and test/e2e/deploy-monitoring.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import type { SwitchyardConfig } from '../../src/config/schema.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEPLOY = path.join(ROOT, 'deploy');
export const KUBECTL = process.env.KUBECTL ?? 'kubectl';

// A loose view of a Kubernetes object: the tests index into it freely, the schemas vouch for shapes.
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [key: string]: any };

// --- rendering --------------------------------------------------------------------------------

const kubectlProbe = spawnSync(KUBECTL, ['version', '--client'], { encoding: 'utf8' });
const kubectlMissing = kubectlProbe.error !== undefined;
// CI installs kubectl (.ci/run, Debian's kubernetes-client); elsewhere a missing kubectl skips, saying so.
export const skip = kubectlMissing && process.env.CI !== 'true' ? `${KUBECTL} not found: apt-get install kubernetes-client (or set KUBECTL)` : false;

export function kustomize(dir: string): K8sObject[] {
  const result = spawnSync(KUBECTL, ['kustomize', dir], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (result.error) throw new Error(`${KUBECTL} kustomize ${dir}: ${result.error.message}`);
  assert.equal(result.status, 0, `${KUBECTL} kustomize ${dir} failed:\n${result.stderr}`);
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(result.stdout)) {
    assert.equal(doc.errors.length, 0, `YAML from kustomize ${dir}: ${doc.errors.join('; ')}`);
    const value = doc.toJS() as K8sObject | null;
    if (value !== null) objects.push(value);
  }
  return objects;
}

const rendered = new Map<string, K8sObject[]>();
export function render(overlay: string): K8sObject[] {
  let objects = rendered.get(overlay);
  if (!objects) {
    objects = kustomize(path.join(DEPLOY, overlay));
    rendered.set(overlay, objects);
  }
  return objects;
}

export function find(objects: readonly K8sObject[], kind: string, name: string, namespace?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (o.metadata.name === name || (kind === 'ConfigMap' && o.metadata.name.startsWith(`${name}-`))) && (namespace === undefined || o.metadata.namespace === namespace));
  assert.equal(found.length, 1, `expected one ${kind} ${namespace ?? '*'}/${name}, found ${found.length}`);
  return found[0]!;
}

// --- schema validation (kubernetes-models: ajv validators generated from the Kubernetes OpenAPI) ---

interface Model { validate(): void }
type ModelClass = new (data: unknown) => Model;

/** The model class for an apiVersion and kind: core/v1 is "kubernetes-models/v1", a group "kubernetes-models/GROUP/VERSION". */
export async function modelFor(apiVersion: string, kind: string): Promise<ModelClass> {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') as [string, string] : ['', apiVersion];
  const specifier = group === ''
    ? `kubernetes-models/v1/${kind}`
    : group.endsWith('cert-manager.io')
      ? `@kubernetes-models/cert-manager/${group}/${version}/${kind}`
      : group === 'monitoring.coreos.com'
        ? `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`
        : group === 'gateway.networking.k8s.io'
          ? `@kubernetes-models/gateway-api/${group}/${version}/${kind}`
          : `kubernetes-models/${group}/${version}/${kind}`;
  let module: Record<string, unknown>;
  try {
    module = await import(specifier) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`no schema for ${apiVersion} ${kind} (${specifier}): ${(error as Error).message}`);
  }
  const model = module[kind];
  assert.equal(typeof model, 'function', `${specifier} exports no ${kind}`);
  return model as ModelClass;
}

export async function schemaErrors(object: K8sObject): Promise<string | undefined> {
  const Model = await modelFor(object.apiVersion, object.kind);
  try {
    new Model(object).validate();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

// --- helpers on the rendered objects ----------------------------------------------------------

export function switchyardConfig(objects: readonly K8sObject[]): SwitchyardConfig {
  const configMap = find(objects, 'ConfigMap', 'switchyard-config', 'switchyard');
  const text = configMap.data?.['switchyard.yaml'];
  assert.equal(typeof text, 'string', 'the ConfigMap has a switchyard.yaml key');
  return parseConfig(text as string, 'ConfigMap switchyard/switchyard-config: switchyard.yaml');
}

const quantityUnits: Record<string, number> = { '': 1, m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9 };
export function quantity(value: string | number): number {
  const match = /^([0-9.]+)(m|Ki|Mi|Gi|k|M|G)?$/.exec(String(value));
  assert.ok(match, `unexpected quantity ${value}`);
  return Number(match[1]) * quantityUnits[match[2] ?? '']!;
}

export function containerPort(container: K8sObject, port: string | number): number {
  if (typeof port === 'number') return port;
  const named = (container.ports ?? []).find((p: { name?: string }) => p.name === port);
  assert.ok(named, `container ${container.name} has no port named ${port}`);
  return named.containerPort;
}

export function preStopSeconds(container: K8sObject): number {
  const preStop = container.lifecycle?.preStop;
  assert.ok(preStop, `container ${container.name} has a preStop hook`);
  if (preStop.sleep) return preStop.sleep.seconds;
  // An exec "sleep N" (or node -e "setTimeout(..., N)") for clusters without the sleep action.
  const text = (preStop.exec?.command ?? []).join(' ');
  const seconds = /sleep\s+(\d+)/.exec(text)?.[1] ?? String(Number(/setTimeout\([^,]+,\s*(\d+)\)/.exec(text)?.[1] ?? 0) / 1000);
  return Number(seconds);
}

// --- a NetworkPolicy evaluator (ingress, networking.k8s.io/v1 semantics) -----------------------

export type Labels = Record<string, string>;
export interface LabelSelector { matchLabels?: Labels; matchExpressions?: { key: string; operator: string; values?: string[] }[] }
export interface Pod { namespace: string; namespaceLabels: Labels; labels: Labels }
export interface Destination { namespace: string; labels: Labels; port: number; portNames: Record<string, number>; protocol?: string }

export function selects(selector: LabelSelector | undefined, labels: Labels): boolean {
  if (!selector) return true; // callers treat an absent selector as they must before calling
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const expr of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, expr.key);
    const value = labels[expr.key];
    switch (expr.operator) {
      case 'In': if (!has || !expr.values!.includes(value!)) return false; break;
      case 'NotIn': if (has && expr.values!.includes(value!)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      default: throw new Error(`unknown selector operator ${expr.operator}`);
    }
  }
  return true;
}

/** Whether a pod may open a connection to a destination port under these policies (ingress only). */
export function ingressAllowed(policies: readonly K8sObject[], source: Pod, dest: Destination): boolean {
  const protocol = dest.protocol ?? 'TCP';
  const applying = policies.filter((p) =>
    p.metadata.namespace === dest.namespace
    && selects(p.spec.podSelector ?? {}, dest.labels)
    && (p.spec.policyTypes ?? ['Ingress']).includes('Ingress'));
  if (applying.length === 0) return true; // a pod no policy selects is not isolated
  return applying.some((policy) => (policy.spec.ingress ?? []).some((rule: { from?: object[]; ports?: object[] }) => {
    const portOk = !rule.ports || rule.ports.length === 0 || rule.ports.some((p: { port?: string | number; endPort?: number; protocol?: string }) => {
      if ((p.protocol ?? 'TCP') !== protocol) return false;
      if (p.port === undefined) return true;
      const number = typeof p.port === 'number' ? p.port : dest.portNames[p.port];
      if (number === undefined) return false;
      return p.endPort === undefined ? number === dest.port : dest.port >= number && dest.port <= p.endPort;
    });
    const fromOk = !rule.from || rule.from.length === 0 || rule.from.some((peer: { podSelector?: LabelSelector; namespaceSelector?: LabelSelector; ipBlock?: object }) => {
      // An ipBlock may well cover pod IPs: count it as letting anyone in, so a test would notice.
      if (peer.ipBlock) return true;
      const namespaceOk = peer.namespaceSelector ? selects(peer.namespaceSelector, source.namespaceLabels) : source.namespace === policy.metadata.namespace;
      const podOk = peer.podSelector ? selects(peer.podSelector, source.labels) : true;
      return namespaceOk && podOk;
    });
    return portOk && fromOk;
  }));
}

/** A pod in a namespace; the API server sets kubernetes.io/metadata.name on every namespace and it cannot be changed. */
export function pod(namespace: string, labels: Labels = {}, namespaceLabels: Labels = {}): Pod {
  return { namespace, labels, namespaceLabels: { ...namespaceLabels, 'kubernetes.io/metadata.name': namespace } };
}

export function destinationOf(deployment: K8sObject, port: number): Destination {
  const container = deployment.spec.template.spec.containers[0];
  const portNames: Record<string, number> = {};
  for (const p of container.ports ?? []) if (p.name) portNames[p.name] = p.containerPort;
  return { namespace: deployment.metadata.namespace!, labels: deployment.spec.template.metadata.labels, port, portNames };
}
