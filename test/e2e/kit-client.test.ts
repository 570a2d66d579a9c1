// Must come first: grpc-js picks its DNS resolver when it loads (see the helper).
import '../helpers/grpc-alternative-resolver.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { loadEchoPackage, startEchoServer, type EchoClient, type EchoResponse, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { createClient, createChannelOptions } from '../../src/kit/client/index.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';

const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'] as const;
const { Echo } = loadEchoPackage();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function unary(client: EchoClient, deadlineMs = 5_000): Promise<EchoResponse> {
  return new Promise((resolve, reject) => {
    client.Unary({ payload: Buffer.from('hi') }, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) =>
      error ? reject(error) : resolve(response!),
    );
  });
}

/** Calls in a loop from `concurrency` workers on one client, counting backends, certificate serials and failures. */
function startLoad(client: EchoClient, concurrency = 6) {
  const served = new Map<string, number>();
  const serials = new Map<string, number>();
  const failures: string[] = [];
  let running = true;
  const worker = async () => {
    while (running) {
      try {
        const response = await unary(client);
        served.set(response.backend, (served.get(response.backend) ?? 0) + 1);
        const serial = response.metadata.find((line) => line.startsWith('peer-serial='))?.slice('peer-serial='.length);
        if (serial) serials.set(serial, (serials.get(serial) ?? 0) + 1);
      } catch (error) {
        const e = error as grpc.ServiceError;
        failures.push(`${grpc.status[e.code]}: ${e.details}`);
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    served,
    serials,
    failures,
    count: (backend: string) => served.get(backend) ?? 0,
    stop: async () => {
      running = false;
      await Promise.all(workers);
    },
  };
}

describe('client kit over a headless Service (real DNS server, three A records on loopback)', () => {
  let dns: TestDnsServer;
  let port: number;
  let backends: EchoServerHandle[];
  const NAME = 'echo.kit.test';

  before(async () => {
    dns = await startDnsServer();
    port = await findPortFreeOnAll(HOSTS);
    backends = await Promise.all(HOSTS.map((host, i) => startEchoServer({ name: `pod-${i}`, host, port })));
    dns.setRecords(NAME, { a: [...HOSTS] });
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await dns.close();
  });

  it('spreads the RPCs of one client channel over every address, where the pick_first default pins one', async () => {
    const target = `dns://${dns.address}/${NAME}:${port}`;
    const client = createClient(Echo, { target });
    try {
      // Let every subchannel connect (round_robin connects to all), then measure.
      const warm = new Set<string>();
      for (let i = 0; i < 60 && warm.size < 3; i++) warm.add((await unary(client)).backend);
      const counts = new Map<string, number>();
      for (let batch = 0; batch < 30; batch++) {
        const responses = await Promise.all(Array.from({ length: 10 }, () => unary(client)));
        for (const { backend } of responses) counts.set(backend, (counts.get(backend) ?? 0) + 1);
      }
      assert.deepEqual([...counts.keys()].sort(), ['pod-0', 'pod-1', 'pod-2']);
      for (const [backend, count] of counts) assert.ok(count >= 60, `${backend} served only ${count} of 300 RPCs: ${JSON.stringify([...counts])}`);
    } finally {
      client.close();
    }

    // The pitfall the kit avoids: the same target without a service config is pick_first.
    const plain = new Echo(target, grpc.credentials.createInsecure());
    try {
      const pinned = new Set<string>();
      for (let i = 0; i < 30; i++) pinned.add((await unary(plain)).backend);
      assert.equal(pinned.size, 1, `pick_first spread over ${[...pinned].join(', ')}`);
    } finally {
      plain.close();
    }
  });

  it('rejects targets grpc-js would misread', () => {
    assert.throws(() => createChannelOptions({ target: `dns:///${NAME}` }), /explicit port/);
    assert.throws(() => createChannelOptions({ target: `${NAME}:${port}` }), /dns:\/\/\/name:port/);
    const options = createChannelOptions({ target: `dns:///${NAME}:${port}`, timeoutMs: 1_500 });
    const config = JSON.parse(options['grpc.service_config'] as string);
    assert.deepEqual(config.loadBalancingConfig, [{ round_robin: {} }]);
    assert.deepEqual(config.methodConfig[0].timeout, { seconds: 1, nanos: 500_000_000 });
    assert.equal(options['grpc.keepalive_time_ms'], 30_000);
    assert.equal(options['grpc.service_config_disable_resolution'], 1);
  });
});

describe('client kit: a new DNS record is picked up when connections age out', () => {
  const AGE_MS = 1_000;
  const GRACE_MS = 1_000;
  const NAME = 'aging.kit.test';
  let dns: TestDnsServer;
  let port: number;
  let backends: EchoServerHandle[];

  before(async () => {
    dns = await startDnsServer();
    port = await findPortFreeOnAll(HOSTS);
    const serverOptions = { 'grpc.max_connection_age_ms': AGE_MS, 'grpc.max_connection_age_grace_ms': GRACE_MS };
    backends = await Promise.all(HOSTS.map((host, i) => startEchoServer({ name: `pod-${i}`, host, port, serverOptions })));
    dns.setRecords(NAME, { a: [HOSTS[0], HOSTS[1]] });
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await dns.close();
  });

  it('re-resolves after the age-out GOAWAY and sends the added pod traffic, with no failed RPC', async () => {
    const client = createClient(Echo, { target: `dns://${dns.address}/${NAME}:${port}`, dnsMinResolutionIntervalMs: 500 });
    const load = startLoad(client);
    try {
      await waitFor(() => load.count('pod-0') > 20 && load.count('pod-1') > 20, 'traffic on the first two pods');
      dns.setRecords(NAME, { a: [...HOSTS] });
      const added = Date.now();
      await waitFor(() => load.count('pod-2') > 0, 'the added pod to get traffic', 10_000);
      const elapsed = Date.now() - added;
      // grpc-js adds ±10% jitter to the age; the GOAWAY comes at the age, re-resolution right after.
      assert.ok(elapsed <= AGE_MS * 1.1 + GRACE_MS + 2_000, `the added pod got its first RPC after ${elapsed} ms`);
      await waitFor(() => load.count('pod-2') > 50, 'the added pod to take a share');
    } finally {
      await load.stop();
      client.close();
    }
    assert.deepEqual(load.failures, []);
  });
});

/** An Echo server whose Unary answers carry the serial of the client certificate it saw. */
async function startCertEchoServer(name: string, host: string, port: number, credentials: grpc.ServerCredentials, serverOptions: grpc.ServerOptions = {}) {
  const server = new grpc.Server(serverOptions);
  server.addService(Echo.service, {
    Unary: (call: grpc.ServerUnaryCall<unknown, EchoResponse>, callback: grpc.sendUnaryData<EchoResponse>) => {
      const serial = call.getAuthContext().sslPeerCertificate?.serialNumber ?? 'none';
      callback(null, { payload: Buffer.alloc(0), backend: name, sequence: 0, received_bytes: 0, metadata: [`peer-serial=${serial}`] });
    },
  });
  await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:${port}`, credentials, (error, bound) => (error ? reject(error) : resolve(bound))));
  return {
    server,
    close: () => new Promise<void>((resolve) => {
      server.tryShutdown(() => resolve());
      setTimeout(() => server.forceShutdown(), 2_000).unref();
    }),
  };
}

const serialOf = (identity: TestIdentity) => new X509Certificate(identity.certPem).serialNumber;

/** Replaces `file` in one rename, as a writer that knows what it is doing would. */
async function replaceFile(file: string, contents: Buffer): Promise<void> {
  await writeFile(`${file}.tmp`, contents);
  await rename(`${file}.tmp`, file);
}

describe('client kit: mTLS from files', () => {
  const NAME = 'echo.kit.test';
  let dns: TestDnsServer;
  let pki: TestPki;
  let serverIdentity: TestIdentity;
  let impostorIdentity: TestIdentity;
  let clientDir: string;

  before(async () => {
    dns = await startDnsServer();
    pki = await makeTestPki();
    serverIdentity = await issueIdentity(pki, 'echo-server', { subject: '/CN=echo.kit.test', san: 'DNS:echo.kit.test, URI:spiffe://test/ns/kit/sa/echo', usage: 'serverAuth' });
    // Another service's certificate, from the same CA: what a recycled pod IP may present.
    impostorIdentity = await issueIdentity(pki, 'other-server', { subject: '/CN=other.kit.test', san: 'DNS:other.kit.test, URI:spiffe://test/ns/kit/sa/other', usage: 'serverAuth' });
    clientDir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-kit-client-'));
  });

  after(async () => {
    await dns.close();
    await pki.cleanup();
    await rm(clientDir, { recursive: true, force: true });
  });

  const serverCredentials = (identity: TestIdentity) =>
    grpc.ServerCredentials.createSsl(pki.caCertPem, [{ cert_chain: identity.certPem, private_key: identity.keyPem }], true);

  it('survives a client certificate rotation: no failed RPC, and new connections present the new certificate', async () => {
    const port = await findPortFreeOnAll(HOSTS.slice(0, 2));
    // Connections age out every second, so new ones are opened all through the rotation.
    const serverOptions = { 'grpc.max_connection_age_ms': 1_000, 'grpc.max_connection_age_grace_ms': 1_000 };
    const backends = await Promise.all([0, 1].map((i) => startCertEchoServer(`pod-${i}`, HOSTS[i]!, port, serverCredentials(serverIdentity), serverOptions)));
    dns.setRecords(NAME, { a: [HOSTS[0], HOSTS[1]] });
    const certFile = path.join(clientDir, 'tls.crt');
    const keyFile = path.join(clientDir, 'tls.key');
    await writeFile(certFile, pki.client.certPem);
    await writeFile(keyFile, pki.client.keyPem);

    const client = createClient(Echo, {
      target: `dns://${dns.address}/${NAME}:${port}`,
      tls: { caFile: pki.caCert, certFile, keyFile, refreshIntervalMs: 100 },
      dnsMinResolutionIntervalMs: 500,
    });
    const load = startLoad(client);
    try {
      const oldSerial = serialOf(pki.client);
      await waitFor(() => (load.serials.get(oldSerial) ?? 0) > 20 && load.served.size === 2, 'calls with the first certificate on both pods');

      const rotated = await issueIdentity(pki, 'client-rotated', { subject: '/CN=client.test', san: 'URI:spiffe://test/client, DNS:client.test' });
      const newSerial = serialOf(rotated);
      // Half a rotation first: the new certificate with the old key, for longer than a connection
      // lives. The kit keeps using the last good pair meanwhile, so no new connection fails.
      await replaceFile(certFile, rotated.certPem);
      await sleep(1_500);
      assert.equal(load.serials.get(newSerial) ?? 0, 0, 'a certificate was used with a key that is not its own');
      await replaceFile(keyFile, rotated.keyPem);
      const rotatedAt = Date.now();

      await waitFor(() => (load.serials.get(newSerial) ?? 0) > 0, 'a connection with the new certificate', 10_000);
      assert.ok(Date.now() - rotatedAt < 100 + 1_100 + 2_000, 'the new certificate took too long to be used');
      // Once every old connection has aged out and closed, only the new certificate is seen.
      await sleep(1_100 + 1_000 + 200);
      const before = load.serials.get(oldSerial) ?? 0;
      await waitFor(() => (load.serials.get(newSerial) ?? 0) > 100, 'calls with the new certificate');
      assert.equal(load.serials.get(oldSerial) ?? 0, before, 'the old certificate was still in use after every connection aged out');
    } finally {
      await load.stop();
      client.close();
      await Promise.all(backends.map((b) => b.close()));
    }
    assert.deepEqual(load.failures, []);
  });

  it('refuses a backend presenting another service\'s valid certificate (a recycled IP) and uses the right one', async () => {
    const port = await findPortFreeOnAll(HOSTS.slice(0, 2));
    const right = await startEchoServer({ name: 'echo', host: HOSTS[0], port, credentials: serverCredentials(serverIdentity) });
    const impostor = await startEchoServer({ name: 'other', host: HOSTS[1], port, credentials: serverCredentials(impostorIdentity) });
    const tls = { caFile: pki.caCert, certFile: pki.client.cert, keyFile: pki.client.key };
    const clients: grpc.Client[] = [];
    try {
      // The name's records still list an address another service now holds.
      dns.setRecords(NAME, { a: [HOSTS[0], HOSTS[1]] });
      const client = createClient(Echo, { target: `dns://${dns.address}/${NAME}:${port}`, tls });
      clients.push(client);
      for (let i = 0; i < 50; i++) assert.equal((await unary(client)).backend, 'echo');
      assert.equal(impostor.calls.get('Unary') ?? 0, 0);

      // Only the recycled address: every call fails UNAVAILABLE, none reaches the other service.
      dns.setRecords('stale.kit.test', { a: [HOSTS[1]] });
      const stale = createClient(Echo, { target: `dns://${dns.address}/stale.kit.test:${port}`, tls: { ...tls, serverName: NAME } });
      clients.push(stale);
      await assert.rejects(unary(stale, 3_000), (error: grpc.ServiceError) => {
        assert.equal(error.code, grpc.status.UNAVAILABLE, error.message);
        assert.match(error.details, /ERR_TLS_CERT_ALTNAME_INVALID.*echo\.kit\.test/);
        return true;
      });
      const staleSpiffe = createClient(Echo, { target: `dns://${dns.address}/stale.kit.test:${port}`, tls: { ...tls, serverName: 'spiffe://test/ns/kit/sa/echo' } });
      clients.push(staleSpiffe);
      await assert.rejects(unary(staleSpiffe, 3_000), (error: grpc.ServiceError) => {
        assert.equal(error.code, grpc.status.UNAVAILABLE, error.message);
        assert.match(error.details, /URI SANs \[spiffe:\/\/test\/ns\/kit\/sa\/other\] do not include spiffe:\/\/test\/ns\/kit\/sa\/echo/);
        return true;
      });
      assert.equal(impostor.calls.get('Unary') ?? 0, 0);

      // The same with the identity given as a SPIFFE ID.
      dns.setRecords('any.kit.test', { a: [HOSTS[0], HOSTS[1]] });
      const bySpiffe = createClient(Echo, { target: `dns://${dns.address}/any.kit.test:${port}`, tls: { ...tls, serverName: 'spiffe://test/ns/kit/sa/echo' } });
      clients.push(bySpiffe);
      for (let i = 0; i < 30; i++) assert.equal((await unary(bySpiffe)).backend, 'echo');
      assert.equal(impostor.calls.get('Unary') ?? 0, 0);
    } finally {
      for (const client of clients) client.close();
      await Promise.all([right.close(), impostor.close()]);
    }
  });
});
