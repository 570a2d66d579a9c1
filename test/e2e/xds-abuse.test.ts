// What a client with a valid certificate can make the ADS server spend: streams that never send a
// request (capped per HTTP/2 connection), and megabyte strings in the fields the server logs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { TYPE_URL } from '../../src/xds/protos.ts';
import { capabilitiesOf, clusterResource } from '../../src/xds/resources.ts';
import { startAdsServer, type AdsServer } from '../../src/xds/server/ads-server.ts';
import { AdsTestClient } from '../helpers/ads-client.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { waitFor } from '../helpers/harness.ts';
import { Flag, frame, FrameType, grpcRequestHeaders } from '../helpers/raw-h2.ts';
import { MutableProvider } from '../helpers/xds-provider.ts';

const CDS = TYPE_URL.cluster;
const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const PER_CONNECTION = 50;
const REFUSED_STREAM = 0x7;

/** An mTLS connection speaking raw HTTP/2 frames, counting the RST_STREAM and GOAWAY frames it receives. */
async function rawMtls(port: number, pki: TestPki, identity: TestIdentity) {
  const socket = tls.connect({ port, host: '127.0.0.1', ca: pki.caCertPem, cert: identity.certPem, key: identity.keyPem, servername: 'localhost', ALPNProtocols: ['h2'] });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', () => resolve()).once('error', reject));
  socket.on('error', () => {});
  const seen = { refused: 0, otherResets: 0, goaway: false };
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
      const length = pending.readUIntBE(0, 3);
      const type = pending[3]!;
      if (type === FrameType.SETTINGS && !(pending[4]! & Flag.ACK)) socket.write(frame(FrameType.SETTINGS, Flag.ACK, 0));
      if (type === FrameType.RST_STREAM) pending.readUInt32BE(9) === REFUSED_STREAM ? seen.refused++ : seen.otherResets++;
      if (type === FrameType.GOAWAY) seen.goaway = true;
      pending = pending.subarray(9 + length);
    }
  });
  socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(FrameType.SETTINGS, 0, 0)]));
  return { socket, seen };
}

describe('xDS server under abuse', () => {
  let pki: TestPki;
  let a: TestIdentity;
  let server: AdsServer;
  let logBytes = 0;
  const logs: Record<string, unknown>[] = [];
  const clients: AdsTestClient[] = [];

  before(async () => {
    pki = await makeTestPki();
    a = await issueIdentity(pki, 'a', { subject: '/CN=a', san: 'URI:spiffe://test/a' });
    const provider = new MutableProvider();
    provider.set('cluster', clusterResource({ name: 'a-1', policy: 'round_robin', connectTimeoutMs: 1_000 }, capabilitiesOf(undefined)));
    server = await startAdsServer({
      port: 0,
      tls: { caPem: pki.caCertPem, certPem: pki.server.certPem, keyPem: pki.server.keyPem },
      provider,
      authorization: { identities: [{ identity: 'spiffe://test/a', node_ids: ['node-*'], clusters: ['*'], listeners: ['*'] }] },
      limits: { max_streams_per_connection: PER_CONNECTION },

      logger: pino({ level: 'debug' }, {
        write: (line: string) => {
          logBytes += line.length;
          logs.push(JSON.parse(line) as Record<string, unknown>);
        },
      }),
    });
  });

  after(async () => {
    for (const client of clients) client.close();
    await server.close(0);
    await pki.cleanup();
  });

  const connect = (): AdsTestClient => {
    const client = new AdsTestClient({ port: server.port, ca: pki.caCertPem, cert: a.certPem, key: a.keyPem });
    clients.push(client);
    return client;
  };

  it('refuses streams past max_streams_per_connection on one connection, while another client is served', async () => {
    const attacker = await rawMtls(server.port, pki, a);
    const opened = 300;
    const headers = grpcRequestHeaders(ADS_PATH);
    const frames: Buffer[] = [];
    for (let i = 0; i < opened; i++) frames.push(frame(FrameType.HEADERS, Flag.END_HEADERS, 1 + 2 * i, headers));
    attacker.socket.write(Buffer.concat(frames));
    try {
      await waitFor(() => attacker.seen.refused >= opened - PER_CONNECTION || attacker.seen.goaway, 'the streams past the limit to be refused', 10_000);
      assert.ok(server.streamCount <= PER_CONNECTION, `${server.streamCount} streams held for one connection (limit ${PER_CONNECTION})`);

      const stream = connect().sotw({ id: 'node-1' });
      stream.request({ typeUrl: CDS });
      assert.deepEqual((await stream.next(CDS)).names, ['a-1'], 'a client on its own connection is served');
      stream.cancel();
    } finally {
      attacker.socket.destroy();
    }
  });

  it('clips client-supplied strings in logs, status messages and events', async () => {
    const huge = (c: string) => c.repeat(1024 * 1024);
    const before = logBytes;

    // Refused: the node id matches no rule; the refusal names it.
    const refused = connect().sotw({ id: `other-${huge('x')}`, cluster: huge('c'), user_agent_name: huge('u') });
    refused.request({ typeUrl: CDS });
    const status = await refused.closed;
    assert.equal(status.code, grpc.status.PERMISSION_DENIED);
    assert.ok(status.details.length < 1_000, `status message of ${status.details.length} chars`);
    assert.match(status.details, /may not claim node\.id "other-x+…\(1048582 chars\)"/);

    // Admitted with a long (allowed) node id and user agent, then a NACK with a megabyte message.
    const admitted = connect().sotw({ id: `node-${huge('y')}`, cluster: huge('c'), user_agent_name: huge('u') });
    admitted.request({ typeUrl: CDS });
    const cds = await admitted.next(CDS);
    admitted.nack(cds, huge('n'));
    admitted.request({ typeUrl: 'type.googleapis.com/' + huge('t') });
    await waitFor(() => server.stats.nacks >= 1, 'the NACK');
    // A changed node id mid-stream is refused, naming both ids.
    admitted.request({ typeUrl: CDS, node: { id: `node-${huge('z')}` } });
    assert.equal((await admitted.closed).code, grpc.status.PERMISSION_DENIED);

    const written = logBytes - before;
    assert.ok(written < 20_000, `${written} bytes of log for megabyte strings`);
    const admittedLine = logs.find((l) => l.msg === 'xDS stream admitted' && String(l.node).startsWith('node-y'));
    assert.ok(admittedLine, 'the admission is still logged');
    assert.match(String(admittedLine.node), /…\(1048581 chars\)$/);
  });
});
