/**
 * The admin interface against a real proxy: what each endpoint answers,
 * that /drain drains, that it refuses requests a browser page elsewhere could
 * make, and that it is reachable on loopback only by default.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { networkInterfaces } from 'node:os';
import { expectStatus, startEchoSetup, startProxy, unary, waitFor, type EchoClient, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { adminJson, adminUrl } from '../helpers/admin.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { formatStatusTable } from '../../src/cli/status.ts';
import { runCli, exitOf } from '../helpers/cli.ts';
import { closedPort } from '../helpers/ports.ts';

/** A plain HTTP/1.1 request with headers fetch will not let a test set (Host). */
function rawRequest(port: number, path: string, options: { method?: string; headers?: http.OutgoingHttpHeaders; host?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: options.host ?? '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

describe('admin API', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
  let client: EchoClient;
  let adminPort: number;

  before(async () => {
    setup = await startEchoSetup(3, {
      admin: { port: 0 },
      drain: { delay: '1ms', timeout: '2s' },
      routes: [
        { name: 'reads', match: { method: '/switchyard.demo.v1.Echo/Unary', headers: [{ name: 'authorization', exact: 'Bearer s3cret' }] }, cluster: 'echo' },
        { match: { prefix: '/' }, cluster: 'echo', timeout: '5s' },
      ],
    }, {
      cluster: {
        lb_policy: 'least_request',
        outlier_detection: { consecutive_gateway_errors: 3, base_ejection_time: '30s', max_ejection_percent: 50 },
      },
    });
    ({ backends, proxy, client } = setup);
    adminPort = proxy.proxy.adminAddress!.port;
  });

  after(() => setup.close());

  test('binds to 127.0.0.1 by default', () => {
    assert.equal(proxy.proxy.adminAddress?.address, '127.0.0.1');
  });

  test('GET / lists the endpoints; /ready and /live answer', async () => {
    const index = await adminJson(proxy.proxy, '/');
    assert.equal(index.status, 200);
    assert.ok('GET /clusters' in index.body && 'POST /drain' in index.body);
    assert.equal((await fetch(adminUrl(proxy.proxy, '/ready'))).status, 200);
    assert.equal(await (await fetch(adminUrl(proxy.proxy, '/live'))).text(), 'live');
  });

  test('/clusters shows what the proxy believes, ejections included', async () => {
    for (let i = 0; i < 9; i++) await unary(client, { payload: Buffer.from('x') });
    const failing = backends[0]!;
    failing.behaviour.unavailableEvery = 1;
    const failingKey = `127.0.0.1:${failing.port}`;
    const cluster = proxy.proxy.clusters.get('echo')!;
    await waitFor(async () => {
      await unary(client, {}).catch(() => {});
      return cluster.endpoints.get(failingKey)?.ejected === true;
    }, 'the failing endpoint to be ejected');
    failing.behaviour.unavailableEvery = 0;

    const { status, body } = await adminJson(proxy.proxy, '/clusters');
    assert.equal(status, 200);
    const [echo] = body.clusters;
    assert.equal(echo.name, 'echo');
    assert.equal(echo.policy, 'least_request');
    assert.equal(echo.discovery, 'static');
    assert.equal(echo.endpoints.length, 3);
    const ejected = echo.endpoints.find((e: { address: string }) => e.address === failingKey);
    assert.deepEqual(
      { available: ejected.available, ejected: ejected.ejected, reason: ejected.ejectionReason, ejections: ejected.ejections },
      { available: false, ejected: true, reason: 'consecutive_gateway_errors', ejections: 1 },
    );
    for (const endpoint of echo.endpoints) {
      assert.equal(endpoint.health, 'unchecked');
      assert.equal(endpoint.activeRpcs, 0);
      assert.ok(endpoint.totalRpcs >= 3, `${endpoint.address} took ${endpoint.totalRpcs} RPCs`);
      assert.equal(typeof endpoint.latencyEwmaMs, 'number');
      assert.equal(endpoint.connections, 1);
    }

    // `switchyard status` prints the same as a table.
    const table = formatStatusTable(body.clusters);
    assert.match(table, /^CLUSTER\s+ENDPOINT\s+STATUS/);
    assert.match(table, new RegExp(`echo\\s+${failingKey.replace(/\./g, '\\.')}\\s+UNAVAILABLE\\s+unchecked\\s+ejected \\(consecutive_gateway_errors\\)`));
    const child = runCli(['status', '--admin', `127.0.0.1:${adminPort}`]);
    let printed = '';
    child.stdout!.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    assert.equal((await exitOf(child)).code, 0);
    assert.equal(printed.split('\n').filter((line) => line.startsWith('echo ')).length, 3);
    assert.match(printed, /ejected \(consecutive_gateway_errors\)/);
  });

  test('/routes lists routes in match order with their names; credentials in matches are redacted', async () => {
    const { body } = await adminJson(proxy.proxy, '/routes');
    assert.deepEqual(body.routes.map((r: { name: string }) => r.name), ['reads', 'routes[1]']);
    assert.equal(body.routes[1].timeout, 5000);
    assert.deepEqual(body.routes[0].match.headers[0], { name: 'authorization', exact: '[redacted]', invert: false });
  });

  test('/config is the config in force, redacted', async () => {
    const { body } = await adminJson(proxy.proxy, '/config');
    assert.equal(body.clusters[0].lb_policy, 'least_request');
    assert.equal(body.admin.address, '127.0.0.1');
    assert.ok(!JSON.stringify(body).includes('s3cret'));
  });

  test('/certs lists loaded certificates (none on a plaintext proxy)', async () => {
    assert.deepEqual((await adminJson(proxy.proxy, '/certs')).body, { certificates: [] });
  });

  test('/log-level reads and changes the level; a bad level is a 400 that says what is allowed', async () => {
    assert.deepEqual((await adminJson(proxy.proxy, '/log-level')).body, { level: 'silent' });
    const changed = await adminJson(proxy.proxy, '/log-level?level=debug', { method: 'POST' });
    assert.deepEqual(changed, { status: 200, body: { level: 'debug', previous: 'silent' } });
    assert.equal(proxy.proxy.logger.level, 'debug');
    const byBody = await adminJson(proxy.proxy, '/log-level', { method: 'POST', body: JSON.stringify({ level: 'silent' }) });
    assert.equal(byBody.body.level, 'silent');
    const bad = await adminJson(proxy.proxy, '/log-level?level=loud', { method: 'POST' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /one of fatal, error, warn, info, debug, trace, silent/);
  });

  test('unknown paths are 404 and wrong methods 405, with a message', async () => {
    const missing = await adminJson(proxy.proxy, '/secrets');
    assert.equal(missing.status, 404);
    assert.match(missing.body.error, /GET \/ lists them/);
    assert.equal((await adminJson(proxy.proxy, '/drain')).status, 405);
  });

  test('requests naming a foreign Host (DNS rebinding) or a foreign Origin are refused', async () => {
    const rebound = await rawRequest(adminPort, '/config', { headers: { host: 'evil.example:80' } });
    assert.equal(rebound.status, 403);
    const crossOrigin = await rawRequest(adminPort, '/drain', { method: 'POST', headers: { origin: 'https://evil.example' } });
    assert.equal(crossOrigin.status, 403);
    assert.equal(proxy.proxy.state, 'ready', 'a refused /drain drains nothing');
  });

  test('the serving port answers none of it', async () => {
    // The serving listener answers HTTP/1.1 only for what routes serve over it: never with the admin API.
    const response = await rawRequest(proxy.port, '/clusters');
    assert.equal(response.status, 426);
    assert.doesNotMatch(response.body, /"clusters"|endpoint/);
  });

  // Last: it stops the proxy.
  test('POST /drain drains: /ready turns 503, connections get GOAWAY, the proxy stops', async () => {
    const response = await adminJson(proxy.proxy, '/drain', { method: 'POST' });
    assert.equal(response.status, 202);
    assert.equal(response.body.state, 'draining');
    await waitFor(() => proxy.proxy.state === 'stopped', 'the drain to finish');
    const error = await expectStatus(unary(client, {}, undefined, { deadline: Date.now() + 2_000 }));
    assert.equal(error.code, 14, 'a stopped proxy refuses new RPCs');
  });
});

describe('admin interface exposure', () => {
  test('is not reachable on a non-loopback address by default', async () => {
    const proxy = await startProxy({ admin: { port: 0 } });
    try {
      const port = proxy.proxy.adminAddress!.port;
      assert.equal(proxy.proxy.adminAddress!.address, '127.0.0.1');
      const outside = Object.values(networkInterfaces()).flat().filter((address) => address && !address.internal && address.family === 'IPv4');
      for (const address of outside) {
        const refused = await new Promise<string>((resolve) => {
          const socket = net.connect({ host: address!.address, port });
          socket.once('connect', () => { socket.destroy(); resolve('connected'); });
          socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
        });
        assert.equal(refused, 'ECONNREFUSED', `admin on ${address!.address}:${port}`);
      }
    } finally {
      await proxy.close();
    }
  });

  test('a non-loopback address is a config error unless allow_remote is set', async () => {
    await assert.rejects(startProxy({ admin: { address: '0.0.0.0', port: 0 } }), /admin.*address|not a loopback address/s);
    const open = await startProxy({ admin: { address: '0.0.0.0', port: 0, allow_remote: true } });
    try {
      assert.equal(open.proxy.adminAddress!.address, '0.0.0.0');
    } finally {
      await open.close();
    }
  });

  test('switchyard status says clearly when there is no admin interface to read', async () => {
    const port = await closedPort();
    const child = runCli(['status', '--admin', `127.0.0.1:${port}`]);
    const { code, stderr } = await exitOf(child);
    assert.equal(code, 1);
    assert.match(stderr, /cannot read http:\/\/127\.0\.0\.1:\d+\/clusters: ECONNREFUSED/);
  });
});
