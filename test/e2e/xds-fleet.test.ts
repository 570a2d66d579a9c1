// The ADS server at fleet scale (issue 18): responses encoded once and shared, a client that stops
// reading holds one response and is reset after the timeout, and load shedding past max_streams
// that sends clients to another replica.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { startL4Balancer } from '../../src/demo/l4-balancer.ts';
import { writeNode, writeSotwRequest } from '../../src/xds/agent/wire.ts';
import { AdsClient, WILDCARD } from '../../src/xds/client/ads-client.ts';
import { TYPE_URL } from '../../src/xds/protos.ts';
import { capabilitiesOf, clusterResource } from '../../src/xds/resources.ts';
import { startAdsServer, type AdsServer, type AdsServerOptions } from '../../src/xds/server/ads-server.ts';
import { AdsTestClient, type SotwTestStream } from '../helpers/ads-client.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { waitFor } from '../helpers/harness.ts';
import { Flag, frame, FrameType, grpcRequestHeaders } from '../helpers/raw-h2.ts';
import { MutableProvider } from '../helpers/xds-provider.ts';

const EDS = TYPE_URL.endpoint;
const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const RST_STREAM_CANCEL = 0x8;

/** `count` endpoints for cluster "a", moved by `shift` so that each call makes a new version. */
const setEndpoints = (provider: MutableProvider, count: number, shift: number) =>
  provider.setEndpoints('a', Array.from({ length: count }, (_, i) => ({ host: `10.0.${Math.floor((i + shift) / 250)}.${((i + shift) % 250) + 1}`, port: 8080, weight: 1 })));

describe('xDS server at fleet scale', () => {
  let pki: TestPki;
  const servers: AdsServer[] = [];
  const clients: AdsTestClient[] = [];

  before(async () => {
    pki = await makeTestPki();
  });
  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(servers.map((server) => server.close(0)));
    await pki.cleanup();
  });

  async function serve(provider: MutableProvider, options: Partial<AdsServerOptions> = {}): Promise<AdsServer> {
    const server = await startAdsServer({
      port: 0,
      tls: { caPem: pki.caCertPem, certPem: pki.server.certPem, keyPem: pki.server.keyPem },
      provider,
      authorization: { identities: [{ identity: 'spiffe://test/client', node_ids: ['*'], clusters: ['*'], listeners: ['*'] }] },
      debounceMs: 5,
      ...options,
    });
    servers.push(server);
    return server;
  }

  const connect = (server: AdsServer): AdsTestClient => {
    const client = new AdsTestClient({ port: server.port, ca: pki.caCertPem, cert: pki.client.certPem, key: pki.client.keyPem });
    clients.push(client);
    return client;
  };

  it('serialises each resource version once per push and shares the bytes among the streams', async () => {
    const provider = new MutableProvider();
    setEndpoints(provider, 100, 0);
    const server = await serve(provider);
    const client = connect(server);
    const streams: SotwTestStream[] = [];
    for (let i = 0; i < 30; i++) {
      const stream = client.sotw({ id: `node-${i}` });
      stream.request({ typeUrl: EDS, names: ['a'] });
      streams.push(stream);
    }
    for (const stream of streams) stream.ack(await stream.next(EDS));
    assert.deepEqual({ ...server.encoding }, { resourceEncodings: 1, bodyEncodings: 1 }, 'the first answers: one resource, one body, 30 responses');

    for (let push = 1; push <= 3; push++) {
      const before = { ...server.encoding, responses: server.stats.responses };
      setEndpoints(provider, 100, push);
      for (const stream of streams) stream.ack(await stream.next(EDS));
      assert.equal(server.stats.responses - before.responses, 30, 'every stream got the push');
      assert.equal(server.encoding.resourceEncodings - before.resourceEncodings, 1, 'the changed ClusterLoadAssignment was serialised once');
      assert.equal(server.encoding.bodyEncodings - before.bodyEncodings, 1, 'one response body, shared by 30 streams (each adds its nonce)');
    }
  });

  it('a client that stops reading holds one response, and is reset after stalled_stream_timeout; others go on', async () => {
    const provider = new MutableProvider();
    setEndpoints(provider, 2_000, 0);
    const server = await serve(provider, { limits: { stalled_stream_timeout: 1_500 } });
    const reader = connect(server).sotw({ id: 'reader' });
    reader.request({ typeUrl: EDS, names: ['a'] });
    reader.ack(await reader.next(EDS));

    // A raw HTTP/2 client that announces a receive window of 0 and never opens it: nothing can reach it.
    const socket = tls.connect({ port: server.port, host: '127.0.0.1', ca: pki.caCertPem, cert: pki.client.certPem, key: pki.client.keyPem, servername: 'localhost', ALPNProtocols: ['h2'] });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', () => resolve()).once('error', reject));
    socket.on('error', () => {});
    let reset = false;
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
        const type = pending[3]!;
        if (type === FrameType.SETTINGS && !(pending[4]! & Flag.ACK)) socket.write(frame(FrameType.SETTINGS, Flag.ACK, 0));
        if (type === FrameType.RST_STREAM && pending.readUInt32BE(9) === RST_STREAM_CANCEL) reset = true;
        pending = pending.subarray(9 + pending.readUIntBE(0, 3));
      }
    });
    const noWindow = Buffer.alloc(6);
    noWindow.writeUInt16BE(0x4, 0); // SETTINGS_INITIAL_WINDOW_SIZE = 0
    const request = writeSotwRequest({ versionInfo: '', node: writeNode({ id: 'stuck' }), resourceNames: ['a'], typeUrl: EDS, responseNonce: '' });
    const message = Buffer.alloc(5 + request.length);
    message.writeUInt32BE(request.length, 1);
    request.copy(message, 5);
    socket.write(Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(FrameType.SETTINGS, 0, 0, noWindow),
      frame(FrameType.HEADERS, Flag.END_HEADERS, 1, grpcRequestHeaders(ADS_PATH)), frame(FrameType.DATA, 0, 1, message),
    ]));
    try {
      await waitFor(() => server.streamCount === 2 && server.bytesInFlight.now > 0, 'the stuck stream to be admitted and answered');
      const oneResponse = server.bytesInFlight.now;
      assert.ok(oneResponse > 40_000, `the answer (${oneResponse} bytes) waits for a window that never opens`);
      const responses = server.stats.responses;
      for (let push = 1; push <= 3; push++) {
        setEndpoints(provider, 2_000, push);
        reader.ack(await reader.next(EDS));
        assert.equal(server.bytesInFlight.now, oneResponse, 'nothing more is written to the stuck stream');
      }
      assert.equal(server.stats.responses - responses, 3, 'the three pushes went to the reader only');

      await waitFor(() => reset, 'the stuck stream to be reset', 5_000);
      assert.equal(server.stats.stalled, 1);
      assert.equal(server.streamCount, 1, 'only the reader is left');
      assert.equal(server.bytesInFlight.now, 0, 'its response is no longer held');
      setEndpoints(provider, 2_000, 9);
      reader.ack(await reader.next(EDS));
    } finally {
      socket.destroy();
    }
  });

  it('past max_streams refuses new streams with UNAVAILABLE and a retry hint; a client behind a Service lands on another replica', async () => {
    const provider = new MutableProvider();
    provider.set('cluster', clusterResource({ name: 'a', policy: 'round_robin', connectTimeoutMs: 1_000 }, capabilitiesOf('switchyard')));
    const full = await serve(provider, { limits: { max_streams: 1, shed_retry_after: 300 } });
    const spare = await serve(provider);
    const occupant = connect(full).sotw({ id: 'occupant' });
    occupant.request({ typeUrl: TYPE_URL.cluster });
    occupant.ack(await occupant.next(TYPE_URL.cluster));

    const refused = connect(full).sotw({ id: 'late' });
    refused.request({ typeUrl: TYPE_URL.cluster });
    const status = await refused.closed;
    assert.equal(status.code, grpc.status.UNAVAILABLE);
    assert.match(status.details, /holds its limit of 1 streams; retry in \d+ ms, preferably on another replica/);
    const hint = Number(status.metadata.get('grpc-retry-pushback-ms')[0]);
    assert.ok(hint >= 150 && hint <= 450, `retry hint ${hint} ms: 50-150 % of shed_retry_after`);
    assert.equal(full.stats.shed, 1);

    // The proxy's xDS client, through a per-connection balancer in front of both (as a Kubernetes Service).
    const service = await startL4Balancer([full.port, spare.port]);
    const proxy = new AdsClient({
      server: `localhost:${service.port}`,
      tls: { ca: pki.caCertPem, cert: pki.client.certPem, key: pki.client.keyPem },
      node: { id: 'proxy-1' },
      backoff: { initialMs: 20, maxMs: 100 },
    });
    try {
      proxy.watch('cluster', WILDCARD, () => {});
      const started = performance.now();
      proxy.start();
      await waitFor(() => proxy.status().acks.cluster === 1, 'the proxy to be served by a replica');
      assert.equal(spare.streamCount, 1, 'it landed on the replica with room');
      assert.equal(full.streamCount, 1);
      // The balancer sent its first connection to the full replica: refused, it waited for the hint (not its 20 ms backoff).
      assert.equal(full.stats.shed, 2);
      assert.ok(performance.now() - started >= 150, 'the retry hint was honoured');
      assert.match(proxy.status().lastError ?? '', /UNAVAILABLE: this xDS server holds its limit/);
    } finally {
      proxy.close();
      await service.close();
    }
  });
});
