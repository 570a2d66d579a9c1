// deploy/gateway-api: the GatewayClass, the control plane's RBAC and the example Gateway, GRPCRoute
// and HTTPRoute, rendered with `kubectl kustomize` and validated against the Gateway API schemas of
// the pinned CRD version (@kubernetes-models/gateway-api) and the Kubernetes OpenAPI; then checked
// for what they promise: the class is the control plane's, the RBAC grants what the control plane
// reads and writes and no more, and the example routes are accepted by the translation.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { WATCHED } from '../../src/xds/gateway-api/source.ts';
import { translateGatewayApi } from '../../src/xds/gateway-api/translate.ts';
import { controlPlaneSchema } from '../../src/xds/control-plane/control-plane-schema.ts';
import { DEPLOY, ROOT, find, kustomize, schemaErrors, skip, type K8sObject } from '../helpers/kube-manifests.ts';

const render = (dir: string) => kustomize(path.join(DEPLOY, dir));
const PINNED = 'v1.5.1';
/** The gateway_api section's defaults, from a minimal control-plane config. */
const gatewayDefaults = () => controlPlaneSchema.parse({
  server: { port: 0, tls: { cert_file: 'c', key_file: 'k', client_ca_file: 'ca' } },
  gateway_api: {},
  authorization: { identities: [{ identity: 'spiffe://x', node_ids: ['*'], clusters: [], listeners: [] }] },
}).gateway_api!;

describe('deploy/gateway-api', { skip }, () => {
  const objects = () => [...render('gateway-api'), ...render('gateway-api/example')];

  it('every object validates against its schema (Gateway API CRDs of the pinned version, Kubernetes OpenAPI)', async () => {
    const failures: string[] = [];
    for (const object of objects()) {
      const errors = await schemaErrors(object);
      if (errors) failures.push(`${object.kind} ${object.metadata.namespace ?? ''}/${object.metadata.name}: ${errors}`);
    }
    assert.deepEqual(failures, []);
    assert.deepEqual(objects().map((o) => o.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'GRPCRoute', 'Gateway', 'GatewayClass', 'HTTPRoute', 'Role', 'RoleBinding', 'ServiceAccount']);
  });

  it('the validators are live: a wrong match type and a missing listener port are refused', async () => {
    const route = structuredClone(find(objects(), 'GRPCRoute', 'echo', 'shop'));
    route.spec.rules[0].matches[0].method.type = 'Prefix';
    assert.ok(await schemaErrors(route));
    const gateway = structuredClone(find(objects(), 'Gateway', 'edge', 'shop'));
    delete gateway.spec.listeners[0].port;
    assert.match((await schemaErrors(gateway))!, /port/);
  });

  it('the CRD version is pinned, and the same in the kustomization and docs/gateway-api.md', () => {
    const crds = parse(readFileSync(path.join(DEPLOY, 'gateway-api/crds/kustomization.yaml'), 'utf8')) as { resources: string[] };
    assert.deepEqual(crds.resources, [`https://github.com/kubernetes-sigs/gateway-api/releases/download/${PINNED}/standard-install.yaml`]);
    assert.match(readFileSync(path.join(ROOT, 'docs/gateway-api.md'), 'utf8'), new RegExp(`Gateway API ${PINNED.replace(/\./g, '\\.')}`));
  });

  it("the GatewayClass names the control plane's default controller", () => {
    assert.equal(find(objects(), 'GatewayClass', 'switchyard').spec.controllerName, gatewayDefaults().controller_name);
  });

  it('the RBAC grants reading what the control plane watches, writing only status, and its one Lease', () => {
    const role = find(objects(), 'ClusterRole', 'switchyard-gateway-api');
    const allows = (group: string, resource: string, verb: string) => role.rules.some((rule: K8sObject) => rule.apiGroups.includes(group) && rule.resources.includes(resource) && rule.verbs.includes(verb));
    for (const type of WATCHED) {
      const [, group, plural] = /^\/apis?\/(?:([^/]+)\/)?v[^/]+\/(.+)$/.exec(type.path.replace(/^\/api\/v1\//, '/api/v1/'))!;
      const apiGroup = type.path.startsWith('/api/v1/') ? '' : group!;
      for (const verb of ['list', 'watch']) assert.ok(allows(apiGroup, plural!, verb), `${verb} ${apiGroup}/${plural}`);
    }
    assert.ok(allows('discovery.k8s.io', 'endpointslices', 'watch'));
    for (const plural of ['gatewayclasses', 'gateways', 'grpcroutes', 'httproutes']) assert.ok(allows('gateway.networking.k8s.io', `${plural}/status`, 'patch'));
    const writes = role.rules.filter((rule: K8sObject) => rule.verbs.some((verb: string) => !['get', 'list', 'watch'].includes(verb)));
    assert.ok(writes.every((rule: K8sObject) => rule.resources.every((resource: string) => resource.endsWith('/status'))), 'cluster-wide writes are status only');
    const lease = find(objects(), 'Role', 'switchyard-gateway-status-lease', 'switchyard');
    const defaults = gatewayDefaults().lease;
    assert.equal(lease.metadata.namespace, defaults.namespace);
    assert.ok(lease.rules.some((rule: K8sObject) => (rule.resourceNames ?? []).includes(defaults.name) && rule.verbs.includes('update')));
    const binding = find(objects(), 'ClusterRoleBinding', 'switchyard-gateway-api');
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'switchyard-control-plane', namespace: 'switchyard' }]);
  });

  it('the example Gateway and routes, with the example backend Service, are accepted and resolve', () => {
    const all = [...objects(), ...render('example-backend')];
    const of = (kind: string) => all.filter((o) => o.kind === kind) as never[];
    const result = translateGatewayApi({
      gatewayClasses: of('GatewayClass'), gateways: of('Gateway'), grpcRoutes: of('GRPCRoute'), httpRoutes: of('HTTPRoute'),
      referenceGrants: [], services: of('Service'), namespaces: of('Namespace'),
    }, { controllerName: 'switchyard.io/gateway-controller', addresses: [{ type: 'IPAddress', value: '10.0.0.10' }] });
    assert.equal(result.routes.length, 2);
    for (const route of result.routes) {
      const conditions = Object.fromEntries(route.parents[0]!.conditions.map((c) => [c.type, `${c.status} ${c.reason}`]));
      assert.deepEqual(conditions, { Accepted: 'True Accepted', ResolvedRefs: 'True ResolvedRefs' }, `${route.kind} ${route.name}`);
    }
    assert.deepEqual(result.routeConfigs.map((config) => config.name), ['gateway/shop/edge']);
    const grpcRoute = result.routeConfigs[0]!.virtualHosts.find((host) => host.domains[0] === 'api.shop.example.com')!.routes[0]!;
    assert.equal(grpcRoute.action.timeoutMs, 2_000);
    assert.deepEqual(grpcRoute.action.retry, { retryOn: ['unavailable', 'connect_failure'], numRetries: 2 });
  });
});
