/**
 * Where sessions go: affinity cookies (signed, opaque, re-issued when their
 * endpoint is gone), the cluster's policy otherwise, and open-tunnel counts
 * that survive a reload building new endpoint objects. A real Cluster, with
 * a fake discovery source and fake pools (nothing here opens a socket).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from '../../src/cluster/cluster.ts';
import { configSchema } from '../../src/config/schema.ts';
import { failed } from '../../src/grpc/outcome.ts';
import { AffinityKey, cookieValue, setCookie } from '../../src/websocket/affinity.ts';
import { place, type Placement } from '../../src/websocket/placement.ts';
import { WebSocketRoutes } from '../../src/websocket/routes.ts';
import { SessionRegistry, type RegisteredSession } from '../../src/websocket/sessions.ts';
import { FakeDiscovery, FakePools } from '../helpers/fake-streams.ts';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');

function setup(affinity: Record<string, unknown> | undefined = { cookie: { name: 'aff' } }, clusterExtra: Record<string, unknown> = {}) {
  const config = configSchema.parse({
    listeners: [{ name: 'l', port: 0, plaintext: true }],
    clusters: [{ name: 'chat', lb_policy: 'least_connections', endpoints: [{ address: '10.0.0.9', port: 1 }], ...clusterExtra }],
    websocket: { affinity_key_file: 'k', routes: [{ match: { prefix: '/' }, cluster: 'chat', ...(affinity && { affinity }) }] },
  });
  const discovery = new FakeDiscovery();
  const cluster = new Cluster({ config: config.clusters[0]!, source: discovery, createPool: new FakePools().create, environment: { now: () => performance.now(), random: () => 0 } });
  cluster.start();
  discovery.set([1, 2, 3].map((port) => ({ host: '10.0.0.1', port, weight: 1 })));
  const route = new WebSocketRoutes(config.websocket.routes).match('x', '/chat')!;
  return { cluster, discovery, route, key: new AffinityKey(KEY), sessions: new SessionRegistry() };
}

function placed(result: Placement) {
  assert.ok('endpoint' in result, JSON.stringify(result));
  return result;
}

/** The Cookie field a browser would send back after `result`'s Set-Cookie. */
function cookieFrom(result: Placement): string {
  const field = placed(result).setCookie;
  assert.ok(field);
  return field.split(';')[0]!;
}

describe('affinity cookies', () => {
  it('hold no address: an opaque id and a signature, the same for every proxy with the key', () => {
    const { cluster, route, key, sessions } = setup();
    const first = place({ cluster, route, cookies: undefined, hashKey: undefined, avoid: new Set(), key }, sessions);
    const cookie = cookieFrom(first);
    assert.doesNotMatch(cookie, /10\.0\.0\.1|:[0-9]/);
    assert.match(cookie, /^aff=[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}$/);
    const other = new AffinityKey(Buffer.from(KEY));
    assert.equal(other.endpointId('chat', placed(first).endpoint), key.endpointId('chat', placed(first).endpoint));
  });

  it('bring a reconnect back to its endpoint, even when the policy would go elsewhere', () => {
    const { cluster, route, key, sessions } = setup();
    const first = placed(place({ cluster, route, cookies: undefined, hashKey: undefined, avoid: new Set(), key }, sessions));
    const cookies = cookieFrom(first);
    for (let i = 0; i < 5; i++) {
      const again = placed(place({ cluster, route, cookies: `other=1; ${cookies}`, hashKey: undefined, avoid: new Set(), key }, sessions));
      assert.equal(again.endpoint, first.endpoint);
      assert.equal(again.affinity, 'cookie');
      assert.equal(again.setCookie, undefined);
    }
    assert.equal(first.endpoint.activeRequests, 6, 'each placement counts, as pick() does');
  });

  it('whose endpoint is gone, unhealthy or ejected get a live endpoint and a new cookie; strict answers instead', () => {
    for (const loss of ['gone', 'ejected'] as const) {
      const { cluster, discovery, route, key, sessions } = setup(undefined, { outlier_detection: { consecutive_gateway_errors: 1, max_ejection_percent: 100 } });
      const first = placed(place({ cluster, route, cookies: undefined, hashKey: undefined, avoid: new Set(), key }, sessions));
      const cookies = cookieFrom(first);
      if (loss === 'gone') discovery.set([1, 2, 3].map((port) => ({ host: '10.0.0.1', port, weight: 1 })).filter((address) => `${address.host}:${address.port}` !== first.endpoint.key));
      else cluster.release(first.endpoint, 1, failed('upstream_connect_failure'));
      const again = placed(place({ cluster, route, cookies, hashKey: undefined, avoid: new Set(), key }, sessions));
      assert.notEqual(again.endpoint.key, first.endpoint.key, loss);
      assert.equal(again.affinity, 'stale');
      assert.notEqual(cookieFrom(again), cookies);

      const strict = setup({ cookie: { name: 'aff' }, strict: true });
      const strictFirst = placed(place({ cluster: strict.cluster, route: strict.route, cookies: undefined, hashKey: undefined, avoid: new Set(), key }, strict.sessions));
      strict.discovery.set([]);
      const refused = place({ cluster: strict.cluster, route: strict.route, cookies: cookieFrom(strictFirst), hashKey: undefined, avoid: new Set(), key }, strict.sessions);
      assert.deepEqual('refused' in refused && refused.refused, 'affinity_unavailable');
    }
  });

  it('that were tampered with, forged or signed with another key are ignored: a fresh pick and cookie', () => {
    const { cluster, route, key, sessions } = setup({ cookie: { name: 'aff' }, strict: true });
    const cookie = cookieFrom(place({ cluster, route, cookies: undefined, hashKey: undefined, avoid: new Set(), key }, sessions));
    const value = cookie.slice('aff='.length);
    const altered = `aff=${value.slice(0, 3)}${value[3] === 'A' ? 'B' : 'A'}${value.slice(4)}`;
    const forged = `aff=${value.split('.')[0]}.AAAAAAAAAAAAAAAAAAAAAA`;
    const otherKey = cookieFrom(place({ cluster, route, cookies: undefined, hashKey: undefined, avoid: new Set(), key: new AffinityKey(Buffer.alloc(32, 1)) }, sessions));
    for (const cookies of [altered, forged, otherKey, 'aff=garbage']) {
      const result = placed(place({ cluster, route, cookies, hashKey: undefined, avoid: new Set(), key }, sessions));
      assert.equal(result.affinity, 'tampered', cookies);
      assert.ok(result.setCookie, 'a fresh cookie, even on a strict route');
    }
  });

  it('are written with the route\'s attributes and read back from any Cookie field', () => {
    assert.equal(setCookie({ name: 'a', path: '/chat', domain: 'example.com', same_site: 'None', secure: true, http_only: true, max_age: 3_600_000 }, 'v'), 'a=v; Path=/chat; Domain=example.com; Max-Age=3600; SameSite=None; Secure; HttpOnly');
    assert.equal(setCookie({ name: 'a', path: '/', same_site: 'Lax', secure: false, http_only: false }, 'v'), 'a=v; Path=/; SameSite=Lax');
    assert.equal(cookieValue(['x=1', 'a="v"; y=2'], 'a'), 'v');
    assert.equal(cookieValue('xa=1; a=2', 'a'), '2');
    assert.equal(cookieValue(undefined, 'a'), undefined);
  });
});

describe('open-tunnel counts', () => {
  const session = (): RegisteredSession => ({ goAway: () => {}, route: 'r', bytesFromClient: 0, bytesFromBackend: 0 });

  it('move to the new endpoint objects of a cluster a reload rebuilt, so least_connections still sees them', () => {
    const before = setup(undefined);
    const admission = before.sessions.admit({ name: 'l', port: 1 }, '1.2.3.4', { maxConnections: undefined, maxConnectionsPerIp: undefined });
    assert.ok(typeof admission === 'object');
    const endpoint = before.cluster.endpoints.get('10.0.0.1:1')!;
    before.cluster.claim(endpoint);
    const open = session();
    before.sessions.opened(open, admission, 'chat', endpoint);
    for (let i = 0; i < 19; i++) {
      before.cluster.claim(endpoint);
      const more = before.sessions.admit({ name: 'l', port: 1 }, '1.2.3.4', { maxConnections: undefined, maxConnectionsPerIp: undefined });
      assert.ok(typeof more === 'object');
      before.sessions.opened(session(), more, 'chat', endpoint);
    }
    // The reload: a new Cluster of the same name, new endpoint objects at 0.
    const after = setup(undefined);
    const fresh = after.cluster.endpoints.get('10.0.0.1:1')!;
    assert.equal(fresh.activeRequests, 0);
    const placements = Array.from({ length: 30 }, () => placed(place({ cluster: after.cluster, route: after.route, cookies: undefined, hashKey: undefined, avoid: new Set(), key: undefined }, before.sessions)).endpoint.key);
    assert.equal(fresh.activeRequests, 20, 'the 20 open sessions now count on the new object');
    assert.equal(placements.filter((key) => key === '10.0.0.1:1').length, 0);
    before.sessions.closed(open, admission, 'chat', '10.0.0.1:1');
    assert.equal(fresh.activeRequests, 19);
    assert.equal(before.sessions.perEndpoint().get('chat')?.get('10.0.0.1:1'), 19);
  });

  it('cap sessions per listener and per client address, and give places back', () => {
    const sessions = new SessionRegistry();
    const caps = { maxConnections: 3, maxConnectionsPerIp: 2 };
    const listener = { name: 'l', port: 1 };
    const a1 = sessions.admit(listener, '10.1.1.1', caps);
    const a2 = sessions.admit(listener, '10.1.1.1', caps);
    assert.equal(sessions.admit(listener, '10.1.1.1', caps), 'ip_limit');
    const b1 = sessions.admit(listener, '10.2.2.2', caps);
    assert.equal(sessions.admit(listener, '10.3.3.3', caps), 'listener_limit');
    assert.equal(sessions.admit({ name: 'other', port: 2 }, '10.1.1.1', caps) !== 'ip_limit', true, 'caps are per listener');
    for (const admission of [a1, a2, b1]) if (typeof admission === 'object') sessions.release(admission);
    assert.equal(typeof sessions.admit(listener, '10.1.1.1', caps), 'object');
  });
});
