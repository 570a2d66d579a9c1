/**
 * WebSocket and the browser protocols (src/web/) on one listener, which share its HTTP/1.1 side and
 * its HTTP/2 streams: a gRPC-Web call is told by its headers before a WebSocket route looks at the
 * request (the route takes every path here), an extended CONNECT stream reaches the WebSocket proxy
 * before src/web/ looks for a browser call in it, and gRPC itself is untouched by either.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, startBackends, staticCluster, unary } from '../helpers/harness.ts';
import { decodeEchoResponse, echoRequestBytes, frameMessage, parseGrpcWebBody } from '../helpers/web-clients.ts';
import { openClient, openHttp2Client, roundTrip, startWsBackend, startWsProxy, wsCluster, type WsBackend, type WsProxy } from '../helpers/websocket.ts';

const UNARY = '/switchyard.demo.v1.Echo/Unary';

describe('WebSocket beside gRPC-Web on one listener', () => {
  let grpcBackends: EchoServerHandle[];
  let wsBackend: WsBackend;
  let proxy: WsProxy;
  let base: string;

  before(async () => {
    grpcBackends = await startBackends(1);
    wsBackend = await startWsBackend('chat');
    proxy = await startWsProxy({
      listeners: [{ name: 'main', port: 0, plaintext: true, web: { protocols: ['grpc_web'] } }],
      clusters: [staticCluster('echo', grpcBackends), wsCluster('chat', [wsBackend])],
      routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
      websocket: { routes: [{ match: { prefix: '/' }, cluster: 'chat' }] },
    });
    base = `127.0.0.1:${proxy.port}`;
  });

  after(async () => {
    await proxy.close();
    await wsBackend.close();
    await Promise.all(grpcBackends.map((backend) => backend.close()));
  });

  it('serves a gRPC-Web call over HTTP/1.1 on a path a WebSocket route takes', async () => {
    const response = await fetch(`http://${base}${UNARY}`, {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
      body: frameMessage(echoRequestBytes({ payload: Buffer.from('web') })),
    });
    assert.equal(response.status, 200);
    const { messages, trailers } = parseGrpcWebBody(Buffer.from(await response.arrayBuffer()));
    assert.equal(Buffer.from(decodeEchoResponse(messages[0]!).payload).toString(), 'web');
    assert.equal(trailers?.['grpc-status'], '0');
  });

  it('leaves a plain HTTP/1.1 request that is no browser call to the WebSocket route: 426 naming websocket', async () => {
    const response = await fetch(`http://${base}/chat`);
    assert.equal(response.status, 426);
    assert.equal(response.headers.get('upgrade'), 'websocket');
  });

  it('upgrades over HTTP/1.1', async () => {
    const client = await openClient(`ws://${base}/chat`);
    assert.equal(await roundTrip(client, 'hello'), 'chat:hello');
    client.ws.close();
    await client.closed;
  });

  it('serves RFC 8441 over HTTP/2 on a listener that takes gRPC-Web', async () => {
    const { session, status, ws } = await openHttp2Client(`http://${base}`, '/chat');
    assert.equal(status, 200);
    const echoed = await new Promise<string>((resolve) => { ws!.once('message', (data) => resolve(data.toString())); ws!.send('over h2'); });
    assert.equal(echoed, 'chat:over h2');
    ws!.close(1000);
    await new Promise((resolve) => ws!.once('close', resolve));
    session.close();
  });

  it('passes gRPC through untouched', async () => {
    const client = echoClient(base);
    try {
      const { response } = await unary(client, { payload: Buffer.from('grpc') });
      assert.equal(Buffer.from(response.payload).toString(), 'grpc');
    } finally {
      client.close();
    }
  });
});
