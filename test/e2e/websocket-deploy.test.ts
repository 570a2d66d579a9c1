/**
 * deploy/overlays/websocket, rendered with `kubectl kustomize` as a user would apply it: every
 * object valid against the Kubernetes OpenAPI schemas, the proxy's config valid with a WebSocket
 * route whose affinity key is the mounted Secret, the grace periods sized to the proxy's drain and
 * to the backend's own shutdown, and the chat backend reachable by the proxy only.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { destinationOf, find, ingressAllowed, pod, preStopSeconds, render, schemaErrors, skip, switchyardConfig, type K8sObject } from '../helpers/kube-manifests.ts';

describe('deploy/overlays/websocket', { skip }, () => {
  const objects = () => render('overlays/websocket');

  it('renders objects that validate against the Kubernetes OpenAPI schemas, the chat backend among them', async () => {
    const failures: string[] = [];
    for (const object of objects()) {
      const errors = await schemaErrors(object);
      if (errors) failures.push(`${object.kind} ${object.metadata.namespace ?? ''}/${object.metadata.name}: ${errors}`);
    }
    assert.deepEqual(failures, []);
    for (const [kind, name, namespace] of [['Deployment', 'chat', 'chat'], ['Service', 'chat', 'chat'], ['Role', 'switchyard-endpointslices', 'chat'], ['Deployment', 'switchyard', 'switchyard'], ['Deployment', 'echo', 'shop']] as const) {
      assert.ok(find(objects(), kind, name, namespace));
    }
    assert.equal(find(objects(), 'Service', 'chat', 'chat').spec.clusterIP, 'None', 'headless: the proxy places every session itself');
  });

  it('holds a config with a WebSocket route to the chat cluster, whose affinity key is the Secret the Deployment mounts', () => {
    const config = switchyardConfig(objects());
    const route = config.websocket.routes.find((candidate) => candidate.name === 'chat');
    assert.ok(route?.affinity, 'a route with affinity');
    const cluster = config.clusters.find((candidate) => candidate.name === route.cluster)!;
    assert.equal(cluster.lb_policy, 'least_connections');
    assert.deepEqual([cluster.kubernetes?.namespace, cluster.kubernetes?.service, cluster.health_check?.port], ['chat', 'chat', 8081]);
    const spec = find(objects(), 'Deployment', 'switchyard', 'switchyard').spec.template.spec;
    const mount = spec.containers[0].volumeMounts.find((candidate: K8sObject) => config.websocket.affinity_key_file!.startsWith(`${candidate.mountPath}/`));
    assert.ok(mount, `a volume is mounted where ${config.websocket.affinity_key_file} is`);
    const volume = spec.volumes.find((candidate: K8sObject) => candidate.name === mount.name);
    assert.equal(volume.secret.secretName, 'switchyard-affinity-key');
    assert.equal(config.websocket.affinity_key_file, `${mount.mountPath}/key`, 'the Secret\'s key "key"');
  });

  it('gives the proxy a grace period over preStop + drain.delay + drain.timeout, with every close_timeout inside drain.timeout', () => {
    const config = switchyardConfig(objects());
    const spec = find(objects(), 'Deployment', 'switchyard', 'switchyard').spec.template.spec;
    const needed = preStopSeconds(spec.containers[0]) + config.drain.delay / 1000 + config.drain.timeout / 1000;
    assert.ok(spec.terminationGracePeriodSeconds > needed, `${spec.terminationGracePeriodSeconds}s must exceed ${needed}s`);
    for (const route of config.websocket.routes) assert.ok(route.close_timeout <= config.drain.timeout, `${route.name}: close_timeout within drain.timeout`);
  });

  it('gives the chat backend a grace period over its own shutdown: preStop + drain delay + close window, within its deadline', () => {
    const deployment = find(objects(), 'Deployment', 'chat', 'chat');
    const spec = deployment.spec.template.spec;
    const container = spec.containers[0];
    const env = Object.fromEntries(container.env.map((variable: { name: string; value: string }) => [variable.name, Number(variable.value)]));
    const shutdown = preStopSeconds(container) + (env.DRAIN_DELAY_MS + env.CLOSE_WINDOW_MS) / 1000;
    assert.ok(env.SHUTDOWN_DEADLINE_MS / 1000 > shutdown - preStopSeconds(container), 'the deadline leaves room for the last close handshakes');
    assert.ok(spec.terminationGracePeriodSeconds > preStopSeconds(container) + env.SHUTDOWN_DEADLINE_MS / 1000, `${spec.terminationGracePeriodSeconds}s must exceed preStop + SHUTDOWN_DEADLINE_MS`);
    for (const probe of [container.readinessProbe, container.livenessProbe]) assert.equal(probe.grpc.port, 8081, 'probes on the health port the proxy checks too');
  });

  it('lets only the proxies reach the chat backend\'s WebSocket port, and the proxies and kube-system its health port', () => {
    const policies = objects().filter((object) => object.kind === 'NetworkPolicy');
    const chat = find(objects(), 'Deployment', 'chat', 'chat');
    const proxy = pod('switchyard', { 'app.kubernetes.io/name': 'switchyard', 'app.kubernetes.io/component': 'proxy' });
    const others = [pod('chat', { app: 'other' }), pod('default', { app: 'client' }), pod('shop', { 'app.kubernetes.io/name': 'switchyard', 'app.kubernetes.io/component': 'proxy' })];
    assert.equal(ingressAllowed(policies, proxy, destinationOf(chat, 8080)), true);
    assert.equal(ingressAllowed(policies, proxy, destinationOf(chat, 8081)), true, 'the proxy\'s health checks');
    assert.equal(ingressAllowed(policies, pod('kube-system', { component: 'kubelet-probe' }), destinationOf(chat, 8081)), true);
    for (const other of others) assert.equal(ingressAllowed(policies, other, destinationOf(chat, 8080)), false, `${other.namespace}/${JSON.stringify(other.labels)}`);
  });
});
