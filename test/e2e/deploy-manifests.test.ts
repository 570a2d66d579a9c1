// The Kubernetes manifests under deploy/: every overlay rendered with `kubectl kustomize` (as a
// user would apply it), every object validated against the Kubernetes OpenAPI schemas (the
// generated validators of the kubernetes-models package, offline), the proxy's ConfigMap validated
// with Switchyard's own config schema, and what the manifests promise checked on the objects:
// drain timings against the grace period, pod hardening, probes on the health port, no admin port
// anywhere, and (with a small NetworkPolicy evaluator) who can reach which port.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  containerPort, destinationOf, find, ingressAllowed, pod, preStopSeconds, quantity, render, schemaErrors, selects, skip, switchyardConfig,
  type Destination, type K8sObject, type LabelSelector, type Pod,
} from '../helpers/kube-manifests.ts';

const OVERLAYS = ['dev', 'production'] as const;

// --- the tests ----------------------------------------------------------------------------------

describe('deploy/ manifests', { skip }, () => {
  for (const dir of ['base', 'example-backend']) {
    it(`${dir} renders on its own with kubectl kustomize`, () => {
      assert.ok(render(dir).length > 0);
    });
  }

  for (const overlay of OVERLAYS) {
    describe(`overlays/${overlay}`, () => {
      const objects = () => render(`overlays/${overlay}`);

      it('every object validates against the Kubernetes OpenAPI schema (cert-manager CRD schema for Certificate)', async () => {
        const failures: string[] = [];
        for (const object of objects()) {
          const errors = await schemaErrors(object);
          if (errors) failures.push(`${object.kind} ${object.metadata.namespace ?? ''}/${object.metadata.name}: ${errors}`);
        }
        assert.deepEqual(failures, []);
        const kinds = new Set(objects().map((o) => o.kind));
        for (const kind of ['Namespace', 'ServiceAccount', 'ConfigMap', 'Deployment', 'Service', 'PodDisruptionBudget', 'NetworkPolicy', 'Role', 'RoleBinding']) {
          assert.ok(kinds.has(kind), `renders a ${kind}`);
        }
        if (overlay === 'production') assert.ok(kinds.has('Certificate'), 'production issues its certificate with cert-manager');
      });

      it('the validators are live: a wrongly typed field and a missing required one are refused', async () => {
        const deployment = structuredClone(find(objects(), 'Deployment', 'switchyard', 'switchyard'));
        deployment.spec.replicas = '3';
        assert.match((await schemaErrors(deployment))!, /spec\/replicas must be integer/);
        const service = structuredClone(find(objects(), 'Service', 'switchyard', 'switchyard'));
        delete service.spec.ports[0].port;
        assert.match((await schemaErrors(service))!, /port/);
      });

      it('the ConfigMap holds a valid Switchyard config', () => {
        const config = switchyardConfig(objects());
        assert.ok(config.health, 'a health listener');
        assert.equal(config.health.address, '0.0.0.0', 'kubelet must reach the health listener');
        assert.ok(config.admin, 'an admin interface');
        assert.match(config.admin.address, /^(127\.|::1$|localhost$)/, 'admin stays on loopback');
      });

      it('terminationGracePeriodSeconds exceeds preStop + drain.delay + the longest RPC (drain.timeout), and every route bounds its RPCs by drain.timeout', () => {
        const config = switchyardConfig(objects());
        const deployment = find(objects(), 'Deployment', 'switchyard', 'switchyard');
        const spec = deployment.spec.template.spec;
        const container = spec.containers.find((c: K8sObject) => c.name === 'switchyard');
        const preStop = preStopSeconds(container);
        assert.ok(preStop > 0, 'preStop waits before SIGTERM');
        const needed = preStop + config.drain.delay / 1000 + config.drain.timeout / 1000;
        assert.ok(spec.terminationGracePeriodSeconds > needed,
          `terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} must exceed preStop ${preStop}s + drain.delay ${config.drain.delay / 1000}s + drain.timeout ${config.drain.timeout / 1000}s = ${needed}s`);
        // The max RPC time: after GOAWAY an RPC gets drain.timeout, so no route may let one run longer.
        for (const route of config.routes) {
          if (!('cluster' in route) || route.cluster === undefined) continue;
          const bound = Math.min(route.timeout ?? Infinity, route.max_stream_duration ?? Infinity);
          assert.ok(bound <= config.drain.timeout, `route ${route.name}: timeout/max_stream_duration ${bound}ms must be at most drain.timeout ${config.drain.timeout}ms`);
        }
      });

      it('every pod runs non-root with a read-only root filesystem, no capabilities and resource requests and limits', () => {
        for (const deployment of objects().filter((o) => o.kind === 'Deployment')) {
          const spec = deployment.spec.template.spec;
          assert.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${deployment.metadata.name}: seccomp`);
          for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
            const where = `${deployment.metadata.namespace}/${deployment.metadata.name}/${container.name}`;
            const sc = container.securityContext ?? {};
            assert.equal(sc.runAsNonRoot ?? spec.securityContext?.runAsNonRoot, true, `${where}: runAsNonRoot`);
            assert.ok((sc.runAsUser ?? spec.securityContext?.runAsUser) > 0, `${where}: a non-zero runAsUser`);
            assert.equal(sc.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
            assert.equal(sc.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation`);
            assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${where}: capabilities drop ALL`);
            assert.equal(sc.capabilities?.add, undefined, `${where}: no capabilities added`);
            assert.equal(sc.privileged ?? false, false, `${where}: not privileged`);
            for (const resource of ['cpu', 'memory']) {
              const request = container.resources?.requests?.[resource];
              const limit = container.resources?.limits?.[resource];
              assert.ok(request !== undefined && limit !== undefined, `${where}: ${resource} request and limit`);
              assert.ok(quantity(request) <= quantity(limit), `${where}: ${resource} request ${request} <= limit ${limit}`);
            }
            assert.doesNotMatch(container.image, /:latest$|^[^:]+$/, `${where}: a pinned image tag`);
          }
        }
      });

      it('probes use the health listener; the Service exposes the gRPC listener and neither the health nor the admin port', () => {
        const config = switchyardConfig(objects());
        const deployment = find(objects(), 'Deployment', 'switchyard', 'switchyard');
        const container = deployment.spec.template.spec.containers.find((c: K8sObject) => c.name === 'switchyard');
        assert.deepEqual(container.args, ['run', '--config', '/etc/switchyard/switchyard.yaml']);
        const configMount = container.volumeMounts.find((m: { mountPath: string }) => m.mountPath === '/etc/switchyard');
        const configVolume = deployment.spec.template.spec.volumes.find((v: { name: string }) => v.name === configMount.name);
        assert.equal(configVolume.configMap.name, find(objects(), 'ConfigMap', 'switchyard-config', 'switchyard').metadata.name, 'the config volume is the (hash-suffixed) ConfigMap');

        for (const [probe, pathName] of [['readinessProbe', '/ready'], ['livenessProbe', '/live']] as const) {
          const handler = container[probe]?.httpGet;
          assert.ok(handler, `${probe} is an HTTP GET`);
          assert.equal(handler.path, pathName);
          assert.equal(containerPort(container, handler.port), config.health!.port, `${probe} targets the health port`);
        }
        assert.ok(container.readinessProbe.periodSeconds * container.readinessProbe.failureThreshold <= config.drain.delay / 1000,
          'readiness notices the drain (503) within drain.delay');

        const containerPorts = (container.ports as { containerPort: number }[]).map((p) => p.containerPort);
        assert.ok(!containerPorts.includes(config.admin!.port), 'the admin port is not a container port');
        const listenerPorts = config.listeners.filter((l) => l.address !== '127.0.0.1').map((l) => l.port);
        for (const port of listenerPorts) assert.ok(containerPorts.includes(port), `listener port ${port} is a container port`);

        const service = find(objects(), 'Service', 'switchyard', 'switchyard');
        assert.ok(selects({ matchLabels: service.spec.selector }, deployment.spec.template.metadata.labels), 'the Service selects the proxy pods');
        const targets = service.spec.ports.map((p: { targetPort: string | number }) => containerPort(container, p.targetPort));
        assert.deepEqual(targets, listenerPorts, 'the Service targets exactly the serving listeners');
        assert.ok(!targets.includes(config.health!.port) && !targets.includes(config.admin!.port));

        // TLS from the Secret mount.
        const tlsMount = container.volumeMounts.find((m: { name: string }) => m.name === 'tls');
        const tlsVolume = deployment.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'tls');
        assert.equal(tlsVolume.secret.secretName, 'switchyard-tls');
        for (const listener of config.listeners) {
          if (listener.tls) {
            assert.ok(listener.tls.cert_file.startsWith(`${tlsMount.mountPath}/`), `${listener.name}: certificate from the Secret`);
            assert.ok(listener.tls.key_file.startsWith(`${tlsMount.mountPath}/`), `${listener.name}: key from the Secret`);
          }
        }
        if (overlay === 'production') {
          const certificate = find(objects(), 'Certificate', 'switchyard-tls', 'switchyard');
          assert.equal(certificate.spec.secretName, tlsVolume.secret.secretName, 'cert-manager writes the Secret the pods mount');
        }
      });

      it('replicas, PodDisruptionBudget, anti-affinity and rollout keep proxies serving', () => {
        const deployment = find(objects(), 'Deployment', 'switchyard', 'switchyard');
        const replicas = deployment.spec.replicas;
        assert.ok(replicas >= 2, 'at least two proxies');
        const pdb = find(objects(), 'PodDisruptionBudget', 'switchyard', 'switchyard');
        assert.ok(selects(pdb.spec.selector, deployment.spec.template.metadata.labels), 'the PDB covers the proxy pods');
        const allowedDown = pdb.spec.maxUnavailable ?? replicas - pdb.spec.minAvailable;
        assert.ok(allowedDown >= 1 && allowedDown < replicas, 'a drain can proceed, one proxy at a time, never all');
        assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
        const antiAffinity = deployment.spec.template.spec.affinity?.podAntiAffinity;
        const terms = [
          ...(antiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []),
          ...(antiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((t: { podAffinityTerm: object }) => t.podAffinityTerm),
        ];
        assert.ok(terms.some((t: { topologyKey: string; labelSelector: LabelSelector }) => t.topologyKey === 'kubernetes.io/hostname' && selects(t.labelSelector, deployment.spec.template.metadata.labels)),
          'anti-affinity spreads proxies over nodes');
        if (overlay === 'production') assert.ok((antiAffinity.requiredDuringSchedulingIgnoredDuringExecution ?? []).length > 0, 'production: a hard rule');
      });

      it('the example backend is a headless Service the config discovers, with RBAC for exactly its EndpointSlices', () => {
        const config = switchyardConfig(objects());
        const backend = find(objects(), 'Deployment', 'echo', 'shop');
        const service = find(objects(), 'Service', 'echo', 'shop');
        assert.equal(service.spec.clusterIP, 'None', 'headless');
        assert.ok(selects({ matchLabels: service.spec.selector }, backend.spec.template.metadata.labels));
        const cluster = config.clusters.find((c) => c.name === 'echo');
        assert.ok(cluster?.kubernetes, 'the echo cluster uses EndpointSlice discovery');
        assert.equal(cluster.kubernetes.namespace, 'shop');
        assert.equal(cluster.kubernetes.service, 'echo');
        assert.ok(service.spec.ports.some((p: { name: string }) => p.name === cluster.kubernetes!.port), 'the cluster names a port of the Service');
        for (const probe of ['readinessProbe', 'livenessProbe']) {
          const port = backend.spec.template.spec.containers[0][probe]?.grpc?.port;
          assert.equal(port, 8081, `backend ${probe}: gRPC health on its own port`);
        }

        const binding = find(objects(), 'RoleBinding', 'switchyard-endpointslices', 'shop');
        assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'switchyard', namespace: 'switchyard' }]);
        const proxy = find(objects(), 'Deployment', 'switchyard', 'switchyard');
        assert.equal(proxy.spec.template.spec.serviceAccountName, 'switchyard');
        const role = find(objects(), 'Role', binding.roleRef.name, 'shop');
        assert.deepEqual(role.rules, [{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] }]);
        assert.equal(objects().filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding').length, 0, 'no cluster-wide permissions');
      });

      describe('NetworkPolicy: who reaches which port (evaluated on the policy objects)', () => {
        const policies = () => objects().filter((o) => o.kind === 'NetworkPolicy');
        const proxyPod = pod('switchyard', { 'app.kubernetes.io/name': 'switchyard', 'app.kubernetes.io/component': 'proxy' });
        const sources = {
          'kube-system': pod('kube-system', { component: 'kubelet-probe' }),
          monitoring: pod('monitoring', { 'app.kubernetes.io/name': 'prometheus' }),
          'default namespace': pod('default', { app: 'client' }),
          'another pod in switchyard': pod('switchyard', { app: 'debug' }),
          'another pod in shop': pod('shop', { app: 'cart' }),
          // Copies the proxy's labels, but in its own namespace.
          'an impostor in shop': pod('shop', { 'app.kubernetes.io/name': 'switchyard', 'app.kubernetes.io/component': 'proxy' }),
          // A namespace labelled name=monitoring: only kubernetes.io/metadata.name counts, and the API server sets that one.
          'a namespace pretending to be monitoring': pod('attacker', {}, { name: 'monitoring', 'kubernetes.io/metadata.name': 'attacker' }),
          'the Switchyard proxy': proxyPod,
        } satisfies Record<string, Pod>;
        const reachable = (dest: Destination) => Object.entries(sources).filter(([, source]) => ingressAllowed(policies(), source, dest)).map(([name]) => name).sort();

        it("Switchyard's health port: kube-system and monitoring only", () => {
          const config = switchyardConfig(objects());
          const dest = destinationOf(find(objects(), 'Deployment', 'switchyard', 'switchyard'), config.health!.port);
          assert.deepEqual(reachable(dest), ['kube-system', 'monitoring']);
        });

        it("Switchyard's admin port: nobody (it is on loopback, and no policy opens it either)", () => {
          const config = switchyardConfig(objects());
          const dest = destinationOf(find(objects(), 'Deployment', 'switchyard', 'switchyard'), config.admin!.port);
          assert.deepEqual(reachable(dest), []);
        });

        it("Switchyard's gRPC port: every client", () => {
          const dest = destinationOf(find(objects(), 'Deployment', 'switchyard', 'switchyard'), 8443);
          assert.deepEqual(reachable(dest), Object.keys(sources).sort());
        });

        it("the backend's serving port: the Switchyard proxy only", () => {
          const dest = destinationOf(find(objects(), 'Deployment', 'echo', 'shop'), 50051);
          assert.deepEqual(reachable(dest), ['the Switchyard proxy']);
        });

        it("the backend's health port: kube-system and monitoring only", () => {
          const dest = destinationOf(find(objects(), 'Deployment', 'echo', 'shop'), 8081);
          assert.deepEqual(reachable(dest), ['kube-system', 'monitoring']);
        });

        it('the evaluator tells an AND peer from an OR of two peers (the classic mistake would let any pod in)', () => {
          const broken = policies().map((p) => structuredClone(p));
          const echo = broken.find((p) => p.metadata.namespace === 'shop' && p.metadata.name === 'echo')!;
          const { namespaceSelector, podSelector } = echo.spec.ingress[0].from[0];
          echo.spec.ingress[0].from = [{ namespaceSelector }, { podSelector }];
          const dest = destinationOf(find(objects(), 'Deployment', 'echo', 'shop'), 50051);
          const open = Object.entries(sources).filter(([, s]) => ingressAllowed(broken, s, dest)).map(([n]) => n).sort();
          assert.deepEqual(open, ['an impostor in shop', 'another pod in switchyard', 'the Switchyard proxy']);
        });
      });
    });
  }
});
