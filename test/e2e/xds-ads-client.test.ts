/**
 * The ADS client (src/xds/client/ads-client.ts) against the real ADS server
 * (test/helpers/xds-test-server.ts records what it receives and sends):
 * ACK and NACK, wildcard and named subscriptions, what a response replaces
 * or adds, reconnecting with the versions it holds, mTLS names.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AdsClient, WILDCARD, type AdsClientOptions, type AdsConnectionState, type AdsUpdate } from '../../src/xds/client/ads-client.ts';
import { Backoff } from '../../src/xds/client/backoff.ts';
import { capabilitiesOf, clusterLoadAssignmentResource, clusterResource } from '../../src/xds/resources.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { XdsTestServer } from '../helpers/xds-test-server.ts';
import { waitFor } from '../helpers/harness.ts';

const SWITCHYARD = capabilitiesOf('switchyard');
const cluster = (name: string, connectTimeoutMs = 1_000) => clusterResource({ name, policy: 'round_robin', connectTimeoutMs }, SWITCHYARD);
const endpoints = (name: string, port: number) => clusterLoadAssignmentResource(name, [{ host: '127.0.0.1', port, weight: 1 }]);

let pki: TestPki;
let ads: XdsTestServer;
const clients: AdsClient[] = [];

before(async () => {
  pki = await makeTestPki();
  ads = await XdsTestServer.start({ pki });
});

after(async () => {
  for (const client of clients) client.close();
  await ads.close();
  await pki.cleanup();
});

function client(options: Partial<AdsClientOptions> = {}): AdsClient {
  const made = new AdsClient({
    server: ads.address,
    tls: { ca: pki.caCertPem, cert: pki.client.certPem, key: pki.client.keyPem },
    node: { id: 'node-a', cluster: 'edge' },
    backoff: { initialMs: 50, maxMs: 200 },
    ...options,
  });
  clients.push(made);
  return made;
}

describe('AdsClient', () => {
  test('ACKs what its handler accepts; NACKs what it refuses with the last good version, and keeps what it had', async () => {
    ads.set('cluster', [cluster('a'), cluster('b')]);
    const updates: AdsUpdate[] = [];
    let refuse: string | undefined;
    const ads1 = client();
    ads1.watch('cluster', WILDCARD, (update) => {
      if (refuse) throw new Error(refuse);
      updates.push(update);
    });
    const opened = ads.streamsOpened;
    const from = ads.requests.length;
    ads1.start();
    const mine = () => ads.requests.filter((request) => request.stream > opened);
    const sentToMe = () => ads.responses.filter((response) => response.stream > opened);
    // Counted by the client when it sends the ACK; waited for here as the server gets it.
    await waitFor(() => mine().length === 2, 'the first ACK');
    assert.deepEqual(mine()[0]!.resourceNames, [], 'the wildcard is an empty list');
    assert.deepEqual(mine()[0]!.node, { id: 'node-a', cluster: 'edge', user_agent_name: 'switchyard', user_agent_version: mine()[0]!.node!.user_agent_version, user_agent_version_type: 'user_agent_version' });
    const good = ads.lastVersion('cluster');
    const ack = mine()[1]!;
    assert.equal(ack.versionInfo, good);
    assert.equal(ack.responseNonce, sentToMe().at(-1)!.nonce);
    assert.equal(ack.node, undefined, 'node only on the first request of a stream');
    assert.deepEqual([...updates[0]!.resources.keys()], ['a', 'b']);
    assert.equal(updates[0]!.resources.get('a')!.message.name, 'a', 'decoded');
    assert.equal(ads1.state, 'connected');

    refuse = 'Cluster "b": nope';
    ads.set('cluster', [cluster('a')]);
    const nack = await ads.waitForRequest((request) => request.stream > opened && request.errorDetail !== undefined, 'the NACK', from);
    assert.equal(ads1.status().nacks.cluster, 1);
    assert.deepEqual(nack.errorDetail, { code: 3, message: 'Cluster "b": nope' });
    assert.equal(nack.versionInfo, good, 'the last good version');
    assert.equal(nack.responseNonce, sentToMe().at(-1)!.nonce);
    assert.deepEqual([...ads1.resources('cluster').keys()], ['a', 'b'], 'still the last good resources');
    assert.equal(ads1.version('cluster'), good);
    assert.equal(ads1.status().lastNack?.message, 'Cluster "b": nope');

    refuse = undefined;
    // A change: the server does not send again what the client rejected.
    ads.set('cluster', [cluster('a', 2_000)]);
    await waitFor(() => ads1.status().acks.cluster === 2, 'the next ACK');
    assert.deepEqual(updates.at(-1)!.removed, ['b'], 'a Cluster response is the whole set');
    assert.deepEqual([...ads1.resources('cluster').keys()], ['a']);
    ads1.close();
    assert.equal(ads1.state, 'disconnected');
  });

  test('named subscriptions: nothing asked while empty, changes sent with the last nonce, responses add to what is held', async () => {
    ads.set('endpoint', [endpoints('x', 1), endpoints('y', 2)]);
    const ads2 = client();
    const updates: AdsUpdate[] = [];
    ads2.watch('endpoint', [], (update) => void updates.push(update));
    const opened = ads.streamsOpened;
    const from = ads.requests.length;
    ads2.start();
    await waitFor(() => ads2.state === 'connected', 'connected');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(ads.requests.filter((request) => request.stream > opened).length, 0, 'an empty named subscription is not sent (it would read as the wildcard)');

    ads2.subscribe('endpoint', ['x']);
    await waitFor(() => ads2.status().acks.endpoint === 1, 'x');
    assert.deepEqual([...ads2.resources('endpoint').keys()], ['x']);
    const nonce = ads.responses.filter((response) => response.stream > opened).at(-1)!.nonce;
    ads2.subscribe('endpoint', ['x', 'y']);
    const change = await ads.waitForRequest((request) => request.stream > opened && request.resourceNames.length === 2, 'the new subscription', from);
    assert.equal(change.responseNonce, nonce, 'a subscription change carries the latest nonce');
    await waitFor(() => ads2.resources('endpoint').size === 2, 'x and y');

    // A response naming only y leaves x as it is.
    ads.sendRaw('endpoint', [endpoints('y', 3)], 'raw-1');
    await waitFor(() => ads2.version('endpoint') === 'raw-1', 'the partial response');
    assert.deepEqual([...ads2.resources('endpoint').keys()].sort(), ['x', 'y']);
    assert.deepEqual(updates.at(-1)!.received, ['y']);
    assert.deepEqual(updates.at(-1)!.removed, []);

    ads2.subscribe('endpoint', ['y']);
    assert.deepEqual([...ads2.resources('endpoint').keys()], ['y'], 'dropped names are forgotten');
    ads2.close();
  });

  test('handlers of different types do not wait for each other; the same response again is ACKed without the handler', async () => {
    ads.set('cluster', [cluster('c')]);
    ads.set('endpoint', [endpoints('c', 1)]);
    const ads3 = client();
    let endpointSeen!: () => void;
    const endpointArrived = new Promise<void>((resolve) => { endpointSeen = resolve; });
    let clusterCalls = 0;
    ads3.watch('cluster', WILDCARD, async () => {
      clusterCalls++;
      ads3.subscribe('endpoint', ['c']);
      await endpointArrived;
    });
    ads3.watch('endpoint', [], () => endpointSeen());
    ads3.start();
    await waitFor(() => ads3.status().acks.cluster === 1 && ads3.status().acks.endpoint === 1, 'both ACKs');
    ads.sendRaw('cluster', [cluster('c')], ads.lastVersion('cluster'));
    await waitFor(() => ads3.status().acks.cluster === 2, 'the resent response ACKed');
    assert.equal(clusterCalls, 1, 'unchanged: the handler was not asked again');
    ads3.close();
  });

  test('reconnects after the control plane comes back, sending the versions it holds', async () => {
    ads.set('cluster', [cluster('r')]);
    const states: AdsConnectionState[] = [];
    const ads4 = client({ onStateChange: (state) => states.push(state) });
    ads4.watch('cluster', WILDCARD, () => {});
    ads4.start();
    await waitFor(() => ads4.status().acks.cluster === 1, 'the first ACK');
    const version = ads4.version('cluster');
    await ads.stop();
    await waitFor(() => ads4.state !== 'connected', 'the stream to end');
    const from = ads.requests.length;
    await ads.restart();
    await waitFor(() => ads4.state === 'connected', 'reconnected');
    const first = await ads.waitForRequest((request) => request.type === 'cluster', 'the new subscription', from);
    assert.equal(first.versionInfo, version);
    assert.equal(first.responseNonce, '');
    assert.ok(first.node, 'node again on the new stream');
    assert.ok(ads4.status().lastError, 'why the stream ended');
    assert.deepEqual(states.slice(0, 3), ['connecting', 'connected', 'disconnected']);
    ads4.close();
  });

  test('server_name: the control plane\'s certificate is checked against it', async () => {
    ads.set('cluster', [cluster('n')]);
    const named = client({ tls: { ca: pki.caCertPem, cert: pki.client.certPem, key: pki.client.keyPem, serverName: 'localhost' } });
    named.watch('cluster', WILDCARD, () => {});
    named.start();
    await waitFor(() => named.status().acks.cluster === 1, 'a connection checked against "localhost"');
    named.close();

    const wrong = client({ tls: { ca: pki.caCertPem, cert: pki.client.certPem, key: pki.client.keyPem, serverName: 'other.example' } });
    wrong.watch('cluster', WILDCARD, () => {});
    wrong.start();
    await waitFor(() => wrong.status().lastError !== undefined, 'the failure');
    assert.notEqual(wrong.state, 'connected');
    assert.match(wrong.status().lastError!, /UNAVAILABLE/);
    wrong.close();
  });
});

test('Backoff: grows by the multiplier up to the maximum, within the jitter, and resets', () => {
  let random = 0;
  const backoff = new Backoff({ initialMs: 100, maxMs: 1_000, multiplier: 2, jitter: 0.2 }, () => random);
  assert.deepEqual([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()], [80, 160, 320, 640, 800]);
  random = 1;
  assert.equal(backoff.next(), 1_200);
  backoff.reset();
  random = 0.5;
  assert.equal(backoff.next(), 100);
});
