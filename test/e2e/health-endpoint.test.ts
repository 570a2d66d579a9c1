import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { startHealthEndpoint } from '../../src/admin/health-endpoint.ts';
import { startEchoSetup, unary, waitFor, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { probe } from '../helpers/http-probe.ts';

describe("Switchyard's readiness and liveness endpoint", () => {
  let setup: EchoSetup;
  let running: RunningProxy;
  let healthPort: number;

  before(async () => {
    setup = await startEchoSetup(1, { health: { port: 0 } });
    running = setup.proxy;
    healthPort = running.proxy.healthAddress!.port;
  });

  after(() => setup.close());

  it('answers GET /ready 200 "ready" and GET /live 200 "live" while serving, and reveals nothing else', async () => {
    const ready = await probe(healthPort, '/ready');
    assert.deepEqual([ready.status, ready.body], [200, 'ready']);
    assert.equal(ready.headers.server, undefined);
    assert.equal(ready.headers.date, undefined);
    const live = await probe(healthPort, '/live');
    assert.deepEqual([live.status, live.body], [200, 'live']);
    const head = await probe(healthPort, '/ready', { method: 'HEAD' });
    assert.deepEqual([head.status, head.body], [200, '']);
  });

  it('answers 404 to every other path and method, and refuses bodies and oversized headers', async () => {
    for (const [method, path] of [['GET', '/'], ['GET', '/ready/'], ['GET', '/metrics'], ['GET', '/ready?verbose=1'], ['POST', '/ready'], ['DELETE', '/live']] as const) {
      const answer = await probe(healthPort, path, { method });
      assert.deepEqual([answer.status, answer.body], [404, 'not found'], `${method} ${path}`);
    }
    const withBody = await probe(healthPort, '/ready', { method: 'GET', body: 'hello', headers: { 'content-length': 5 } });
    assert.equal(withBody.status, 413);
    const huge = await probe(healthPort, '/ready', { headers: { 'x-padding': 'a'.repeat(8 * 1024) } });
    assert.equal(huge.status, 431);
  });

  it('is never answered on the serving port: an HTTP/2 GET /ready there is not "200 ready"', async () => {
    const session = http2.connect(`http://127.0.0.1:${running.port}`);
    try {
      const stream = session.request({ ':method': 'GET', ':path': '/ready' });
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => { body += chunk; });
      const [headers] = (await new Promise((resolve) => stream.once('response', (h) => resolve([h])))) as [http2.IncomingHttpHeaders];
      await new Promise((resolve) => stream.once('close', resolve));
      assert.notEqual(headers[':status'], 200);
      assert.notEqual(body, 'ready');
    } finally {
      session.close();
    }
  });

  it('answers 503 "starting" before the proxy serves', async () => {
    const endpoint = await startHealthEndpoint({ address: '127.0.0.1', port: 0 }, () => 'starting');
    try {
      const ready = await probe(endpoint.address.port, '/ready');
      assert.deepEqual([ready.status, ready.body], [503, 'starting']);
      assert.equal((await probe(endpoint.address.port, '/live')).status, 200);
    } finally {
      await endpoint.close();
    }
  });

  it('answers 503 "draining" as soon as a drain begins, while /live stays 200 and RPCs are still served', async () => {
    const { proxy, client, close } = await startEchoSetup(1, { health: { port: 0 } });
    const port = proxy.proxy.healthAddress!.port;
    try {
      await unary(client, {});
      const drained = proxy.proxy.drain({ delayMs: 400, timeoutMs: 1_000 });
      const ready = await probe(port, '/ready');
      assert.deepEqual([ready.status, ready.body], [503, 'draining']);
      assert.equal((await probe(port, '/live')).status, 200);
      // Still serving during the drain delay.
      assert.equal((await unary(client, {})).response.backend, 'backend-0');
      client.close();
      await drained;
      assert.equal(proxy.proxy.state, 'stopped');
      await waitFor(async () => probe(port, '/live').then(() => false, () => true), 'the endpoint to close with the proxy', 2_000);
    } finally {
      await close();
    }
  });
});
