/**
 * The server kit (src/kit/server/) on real processes: the example Echo service behind a
 * Switchyard proxy through a SIGTERM under load, the health server's limits, and max
 * connection age moving a grpc-js client onto a backend added to DNS.
 */
// Must come first: grpc-js honours a DNS server named in a dns:// target only with its
// alternative resolver, chosen when it loads (see the helper).
import '../helpers/grpc-alternative-resolver.ts';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as HEALTH_PROTO } from 'grpc-health-check';
import { echoClient, startProxy, unary, waitFor } from '../helpers/harness.ts';
import { steadyLoad } from '../helpers/load.ts';
import { collectLogs, type LogEntry } from '../helpers/cli.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { frame, Flag, FrameType, grpcRequestHeaders, rawConnect } from '../helpers/raw-h2.ts';
import { gracefulShutdown, HEALTH_MAX_CONCURRENT_STREAMS, startHealthServer, type ShutdownLogger } from '../../src/kit/server/index.ts';
import { startEchoServer } from '../../src/demo/echo-service.ts';

const EXAMPLE = fileURLToPath(new URL('../../src/kit/examples/echo-server.ts', import.meta.url));

interface KitLogEntry extends LogEntry {
  readonly step?: string;
  readonly port?: number;
  readonly health_port?: number;
  /** performance.now() in this test process when the line arrived. */
  seenAt: number;
}

interface KitEcho {
  readonly child: ChildProcess;
  readonly host: string;
  readonly port: number;
  readonly healthPort: number;
  readonly logs: KitLogEntry[];
  stop(): Promise<void>;
}

/** Spawns src/kit/examples/echo-server.ts and resolves once it logs "listening". */
async function spawnKitEcho(name: string, host: string, args: Record<string, number>): Promise<KitEcho> {
  const argv = [EXAMPLE, '--name', name, '--host', host, ...Object.entries(args).flatMap(([key, value]) => [`--${key}`, String(value)])];
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const raw = collectLogs(child);
  const logs: KitLogEntry[] = [];
  // Stamp each line with the time this process read it, to compare with the proxy's records.
  child.stdout!.on('data', () => {
    while (logs.length < raw.length) logs.push({ ...(raw[logs.length] as KitLogEntry), seenAt: performance.now() });
  });
  const exited = once(child, 'exit');
  await Promise.race([
    waitFor(() => logs.some((e) => e.msg === 'listening'), `${name} to listen`),
    exited.then(() => { throw new Error(`${name} exited before listening: ${stderr}`); }),
  ]);
  const listening = logs.find((e) => e.msg === 'listening')!;
  return {
    child,
    host,
    port: listening.port!,
    healthPort: listening.health_port!,
    logs,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

type HealthClient = grpc.Client & {
  Check(request: { service: string }, options: grpc.CallOptions, callback: grpc.requestCallback<{ status: string }>): grpc.ClientUnaryCall;
  Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
};

function healthClient(port: number): HealthClient {
  const definition = grpc.loadPackageDefinition(protoLoader.loadSync(HEALTH_PROTO, { keepCase: true, enums: String }));
  const Health = ((definition.grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject;
  const Constructor = Health.Health as unknown as new (target: string, credentials: grpc.ChannelCredentials) => HealthClient;
  return new Constructor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

function check(client: HealthClient, service: string, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    client.Check({ service }, { deadline: Date.now() + timeoutMs }, (error, response) => (error ? reject(error) : resolve(response!.status)));
  });
}

describe('server kit', () => {
  it('SIGTERM under load behind Switchyard: NOT_SERVING → drain delay → stop accepting → stopped, and not one RPC fails', async () => {
    const HOSTS = ['127.0.0.1', '127.0.0.2'];
    const INTERVAL_MS = 100;
    const UNHEALTHY_THRESHOLD = 2;
    const DRAIN_DELAY_MS = 1_500;
    // One health port for the cluster, so each backend has its own loopback address.
    const healthPort = await findPortFreeOnAll(HOSTS);
    const backends = await Promise.all(HOSTS.map((host, i) =>
      spawnKitEcho(`kit-${i}`, host, { port: 0, 'health-port': healthPort, 'drain-delay-ms': DRAIN_DELAY_MS, 'deadline-ms': 6_000 })));
    const [victim, survivor] = backends as [KitEcho, KitEcho];
    const proxy = await startProxy({
      clusters: [{
        name: 'echo',
        endpoints: backends.map((b) => ({ address: b.host, port: b.port })),
        health_check: { port: healthPort, interval: `${INTERVAL_MS}ms`, interval_jitter: '1ms', timeout: '90ms', unhealthy_threshold: UNHEALTHY_THRESHOLD, healthy_threshold: 1 },
      }],
      routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
    });
    const cluster = proxy.proxy.clusters.get('echo')!;
    const keyOf = (b: KitEcho) => `${b.host}:${b.port}`;
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    // Each call held 20 ms by the backend, so some are always in flight.
    const load = steadyLoad(client, { concurrency: 8, request: { delay_ms: 20 } });
    try {
      await waitFor(() => backends.every((b) => cluster.endpoints.get(keyOf(b))!.health === 'healthy'), 'both backends healthy');
      await waitFor(() => backends.every((b) => proxy.records.filter((r) => r.endpoint === keyOf(b)).length > 30), 'traffic on both backends');

      const exited = once(victim.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      victim.child.kill('SIGTERM');
      let unhealthyAt = 0;
      await waitFor(() => {
        if (!unhealthyAt && cluster.endpoints.get(keyOf(victim))!.health === 'unhealthy') unhealthyAt = performance.now();
        return victim.child.exitCode !== null;
      }, 'the backend to exit', 8_000);
      const [code] = await exited;
      assert.equal(code, 0, 'a clean shutdown exits 0');
      // Load keeps running on the survivor after the victim has gone.
      const before = load.answered();
      await waitFor(() => load.answered() > before + 100, '100 more RPCs after the exit');
      await load.stop();

      const steps = victim.logs.filter((e) => e.step).map((e) => e.step);
      assert.deepEqual(steps, ['not_serving', 'drain_wait', 'stop_accepting', 'drained', 'stopped'], JSON.stringify(victim.logs));
      const at = (step: string) => victim.logs.find((e) => e.step === step)!;
      const notServing = at('not_serving');
      const stopAccepting = at('stop_accepting');
      assert.ok((stopAccepting as { at_ms?: number }).at_ms! >= DRAIN_DELAY_MS, 'stop accepting waits for the drain delay');

      // The proxy's health check saw NOT_SERVING during the drain delay, before the server stopped accepting...
      assert.ok(unhealthyAt > 0, 'the endpoint was marked unhealthy');
      assert.ok(unhealthyAt < stopAccepting.seenAt, `unhealthy ${Math.round(stopAccepting.seenAt - unhealthyAt)} ms before stop accepting`);
      // ...and sent it no RPC from interval × threshold (plus one interval of slack) after NOT_SERVING.
      const limit = notServing.seenAt + INTERVAL_MS * (UNHEALTHY_THRESHOLD + 1) + 100;
      const victimRecords = proxy.records.filter((r) => r.endpoint === keyOf(victim));
      const late = victimRecords.filter((r) => r.startedAt > limit);
      assert.equal(late.length, 0, `${late.length} RPCs reached the draining backend ${Math.round((late[0]?.startedAt ?? 0) - notServing.seenAt)} ms after NOT_SERVING`);
      assert.ok(victimRecords.some((r) => r.startedAt > notServing.seenAt - 50), 'it served RPCs right up to NOT_SERVING');
      assert.ok(proxy.records.filter((r) => r.endpoint === keyOf(survivor) && r.startedAt > stopAccepting.seenAt).length > 50);
      assert.deepEqual(load.failures, [], 'no RPC failed');
      assert.ok(proxy.records.every((r) => r.status === 0), 'every RPC the proxy saw ended OK');
    } finally {
      await load.stop();
      client.close();
      await proxy.close();
      await Promise.all(backends.map((b) => b.stop()));
    }
  });

  it('the health server refuses a 2 KiB request (RESOURCE_EXHAUSTED) and streams beyond 10 per connection', async () => {
    const health = await startHealthServer({ address: '127.0.0.1', services: ['kit.v1.Thing'] });
    const client = healthClient(health.port);
    const watches: grpc.ClientReadableStream<{ status: string }>[] = [];
    try {
      assert.equal(await check(client, 'kit.v1.Thing'), 'SERVING');
      const oversized = await check(client, 'x'.repeat(2048)).then(() => undefined, (error: grpc.ServiceError) => error);
      assert.equal(oversized?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(oversized!.details, /larger than max .* vs 1024/);

      // grpc-js honours the server's SETTINGS_MAX_CONCURRENT_STREAMS: ten Watch streams hold the
      // connection's every slot and an eleventh call waits in the client, never reaching the server.
      const updates = new Map<number, string[]>();
      for (let i = 0; i < HEALTH_MAX_CONCURRENT_STREAMS + 1; i++) {
        const watch = client.Watch({ service: 'kit.v1.Thing' });
        updates.set(i, []);
        watch.on('data', (m: { status: string }) => updates.get(i)!.push(m.status));
        watch.on('error', () => {});
        watches.push(watch);
      }
      await waitFor(() => [...updates.values()].filter((u) => u.length > 0).length === HEALTH_MAX_CONCURRENT_STREAMS, 'ten watches answered');
      const queued = await check(client, '', 300).then(() => undefined, (error: grpc.ServiceError) => error);
      assert.equal(queued?.code, grpc.status.DEADLINE_EXCEEDED, 'a call beyond the limit is not served');
      assert.deepEqual(updates.get(HEALTH_MAX_CONCURRENT_STREAMS), [], 'the eleventh watch got nothing');
      health.setAllNotServing();
      await waitFor(() => [...updates.values()].filter((u) => u.at(-1) === 'NOT_SERVING').length === HEALTH_MAX_CONCURRENT_STREAMS, 'watchers told NOT_SERVING');

      // A client that ignores the limit loses the connection: nghttp2 treats a stream beyond the
      // acknowledged SETTINGS_MAX_CONCURRENT_STREAMS as a connection error (GOAWAY PROTOCOL_ERROR).
      const raw = await rawConnect(health.port);
      await waitFor(() => raw.received.includes(FrameType.SETTINGS), 'the server SETTINGS');
      await waitFor(() => raw.received.filter((t) => t === FrameType.SETTINGS).length >= 2, 'the ACK of our SETTINGS');
      const request = Buffer.from([0, 0, 0, 0, 0]); // an empty HealthCheckRequest: service ""
      const open = (id: number) => {
        raw.send(frame(FrameType.HEADERS, Flag.END_HEADERS, id, grpcRequestHeaders('/grpc.health.v1.Health/Watch')));
        raw.send(frame(FrameType.DATA, Flag.END_STREAM, id, request));
      };
      for (let i = 0; i < HEALTH_MAX_CONCURRENT_STREAMS; i++) open(1 + 2 * i);
      await waitFor(() => raw.received.filter((t) => t === FrameType.HEADERS).length === HEALTH_MAX_CONCURRENT_STREAMS, 'ten streams answered');
      assert.equal(raw.goawayCode, undefined, 'ten streams are within the limit');
      open(1 + 2 * HEALTH_MAX_CONCURRENT_STREAMS);
      await waitFor(() => raw.goawayCode !== undefined, 'a GOAWAY');
      assert.equal(raw.goawayCode, 0x1, 'GOAWAY PROTOCOL_ERROR');
      await raw.closed;
      raw.close();
    } finally {
      for (const watch of watches) watch.cancel();
      client.close();
      await health.close();
    }
  });

  it('max connection age: a DNS round_robin client reconnects, re-resolves and reaches a newly added backend within the age', async () => {
    const HOSTS = ['127.0.0.1', '127.0.0.2'];
    const AGE_MS = 1_000;
    const GRACE_MS = 500;
    const port = await findPortFreeOnAll(HOSTS);
    const dns = await startDnsServer();
    dns.setRecords('echo.kit.test', { a: [HOSTS[0]!] });
    const backends = await Promise.all(HOSTS.map((host, i) =>
      spawnKitEcho(`age-${i}`, host, { port, 'health-port': 0, 'max-connection-age-ms': AGE_MS, 'max-connection-age-grace-ms': GRACE_MS })));
    const client = echoClient(`dns://${dns.address}/echo.kit.test:${port}`, grpc.credentials.createInsecure(), {
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
      // grpc-js waits 30 s between resolutions by default; the client kit's business, not the server's.
      'grpc.dns_min_time_between_resolutions_ms': 100,
    });
    const seen: { backend: string; at: number }[] = [];
    let running = true;
    const failures: string[] = [];
    const worker = (async () => {
      while (running) {
        await unary(client, {}).then(
          (r) => { seen.push({ backend: r.response.backend, at: performance.now() }); },
          (error: grpc.ServiceError) => { failures.push(`${error.code}: ${error.details}`); },
        );
      }
    })();
    try {
      await waitFor(() => seen.length > 20, 'traffic on the first backend').catch((e) => { throw new Error(`${e.message}: ${failures.slice(0, 3).join('; ')}`); });
      const addedAt = performance.now();
      const queriesBefore = dns.queryCount;
      dns.setRecords('echo.kit.test', { a: HOSTS });
      await waitFor(() => seen.some((s) => s.backend === 'age-1'), 'traffic on the added backend', 5_000);
      const reachedAfter = seen.find((s) => s.backend === 'age-1')!.at - addedAt;
      // The connection ages out at AGE_MS ± 10% after it opened; the client then re-resolves and connects.
      assert.ok(reachedAfter < AGE_MS * 1.1 + 500, `reached the new backend ${Math.round(reachedAfter)} ms after it was added`);
      assert.ok(dns.queryCount > queriesBefore, 'the client re-resolved');
      assert.ok(seen.filter((s) => s.at < addedAt).every((s) => s.backend === 'age-0'), 'only the first backend before');
      const after = seen.length;
      await waitFor(() => seen.length > after + 40, '40 more RPCs');
      const split = seen.slice(after).filter((s) => s.backend === 'age-0').length;
      assert.ok(split > 5 && split < 35, `round_robin over both: ${split}/40 on the first backend`);
      assert.deepEqual(failures, [], 'no RPC failed across the age-outs');
    } finally {
      running = false;
      await worker;
      client.close();
      await Promise.all(backends.map((b) => b.stop()));
      await dns.close();
    }
  });

  it('shutdown deadline: an RPC still running at deadlineMs is cancelled, and the log says forced', async () => {
    const echo = await startEchoServer({ name: 'slow' });
    const health = await startHealthServer({ address: '127.0.0.1' });
    const lines: string[] = [];
    const logger: ShutdownLogger = { info: (_, msg) => lines.push(msg), warn: (_, msg) => lines.push(msg) };
    const kit = gracefulShutdown({ server: echo.server, health, drainDelayMs: 50, deadlineMs: 400, logger, signals: [] });
    const client = echoClient(`127.0.0.1:${echo.port}`);
    try {
      const slow = unary(client, { delay_ms: 5_000 }).then(() => undefined, (error: grpc.ServiceError) => error);
      await waitFor(() => echo.active === 1, 'the slow RPC to start');
      const started = performance.now();
      const result = await kit.shutdown('test');
      assert.equal(result.forced, true);
      assert.deepEqual(kit.events.map((e) => e.step), ['not_serving', 'drain_wait', 'stop_accepting', 'forced', 'stopped']);
      assert.ok(Math.abs(kit.events.find((e) => e.step === 'forced')!.atMs - 400) < 100, 'forced at the deadline');
      assert.ok(performance.now() - started < 1_000);
      const error = await slow;
      assert.ok(error && [grpc.status.CANCELLED, grpc.status.UNAVAILABLE, grpc.status.INTERNAL].includes(error.code), `the slow RPC ended with ${error?.code}`);
      assert.ok(lines.includes('shutdown: deadline reached, forced'));
      assert.equal(kit.shutdown(), kit.shutdown(), 'shutdown() is idempotent');
    } finally {
      client.close();
      kit.dispose();
    }
  });
});
