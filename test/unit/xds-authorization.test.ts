// xDS stream authorization (pure), its config schema, and the push debouncer.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ANONYMOUS, type CallerIdentity } from '../../src/security/identity.ts';
import { compileGlob, identityNames, XdsAuthorizer } from '../../src/xds/server/authorization.ts';
import { Debouncer, type DebounceTimers } from '../../src/xds/server/debounce.ts';
import { routeNamesOf } from '../../src/xds/server/listener-routes.ts';
import { xdsAuthorizationSettings, xdsLimits } from '../../src/xds/server/xds-auth-schema.ts';
import { listenerResource } from '../../src/xds/resources.ts';
import type { XdsResource } from '../../src/xds/snapshot.ts';

const caller = (fields: { spiffe?: string; dns?: string[]; cn?: string }): CallerIdentity => ({
  authenticated: true,
  spiffeId: fields.spiffe,
  uris: fields.spiffe ? [fields.spiffe] : [],
  dnsNames: fields.dns ?? [],
  commonName: fields.cn,
  certificateSha256: '00',
  label: fields.spiffe ?? (fields.dns?.[0] ? `dns:${fields.dns[0]}` : `cn:${fields.cn}`),
});

const rules = (identities: unknown[]) => new XdsAuthorizer(xdsAuthorizationSettings.parse({ identities }));
const rule = (identity: string, extra: Record<string, unknown> = {}) => ({ identity, node_ids: ['*'], clusters: [], listeners: [], ...extra });

describe('XdsAuthorizer', () => {
  it('names a caller by SPIFFE ID, else DNS SANs, else CN', () => {
    assert.deepEqual(identityNames(caller({ spiffe: 'spiffe://t/a', dns: ['a.test'], cn: 'a' })), { kind: 'spiffe', names: ['spiffe://t/a'] });
    assert.deepEqual(identityNames(caller({ dns: ['a.test', 'b.test'], cn: 'a' })), { kind: 'dns', names: ['a.test', 'b.test'] });
    assert.deepEqual(identityNames(caller({ cn: 'a' })), { kind: 'cn', names: ['a'] });
    assert.deepEqual(identityNames(ANONYMOUS), { kind: 'none', names: [] });
  });

  it('finds the rule for a listed identity and denies everyone else', () => {
    const az = rules([rule('spiffe://t/a'), rule('b.test'), rule('ops')]);
    assert.equal(az.ruleFor(caller({ spiffe: 'spiffe://t/a' }))?.identity, 'spiffe://t/a');
    assert.equal(az.ruleFor(caller({ dns: ['x.test', 'B.TEST'] }))?.identity, 'b.test', 'any DNS SAN, case-insensitively');
    assert.equal(az.ruleFor(caller({ cn: 'ops' }))?.identity, 'ops');
    assert.equal(az.ruleFor(caller({ cn: 'OPS' })), undefined, 'CNs compare exactly');
    assert.equal(az.ruleFor(caller({ spiffe: 'spiffe://t/other', dns: ['b.test'] })), undefined, 'a SPIFFE ID wins: its DNS SANs are not looked at');
    assert.equal(az.ruleFor(caller({ dns: ['c.test'], cn: 'ops' })), undefined, 'DNS SANs win over the CN');
    assert.equal(az.ruleFor(ANONYMOUS), undefined);
  });

  it('binds node.id and node.cluster to the identity with globs', () => {
    const az = rules([rule('spiffe://t/front', { node_ids: ['frontend-*'], node_clusters: ['prod-?'] }), rule('spiffe://t/any')]);
    const front = az.ruleFor(caller({ spiffe: 'spiffe://t/front' }))!;
    assert.equal(front.checkNode({ id: 'frontend-7', cluster: 'prod-a' }), undefined);
    assert.equal(front.checkNode({ id: 'backend-1', cluster: 'prod-a' }), 'spiffe://t/front may not claim node.id "backend-1"');
    assert.equal(front.checkNode({ id: 'frontend-7', cluster: 'prod-ab' }), 'spiffe://t/front may not claim node.cluster "prod-ab"');
    assert.equal(az.ruleFor(caller({ spiffe: 'spiffe://t/any' }))!.checkNode({ id: 'x', cluster: '' }), undefined, 'no node_clusters: any cluster');
  });

  it('allows clusters and listeners by glob, and routes through the listeners that name them', () => {
    const az = rules([rule('spiffe://t/a', { clusters: ['echo-*', 'exact'], listeners: ['xds:///echo*'] })]);
    const a = az.ruleFor(caller({ spiffe: 'spiffe://t/a' }))!;
    assert.equal(a.allowsCluster('echo-1'), true);
    assert.equal(a.allowsCluster('exact'), true);
    assert.equal(a.allowsCluster('exactly'), false);
    assert.equal(a.allowsCluster('other'), false);
    const listener = (name: string, routeConfig: string): [string, XdsResource] => [name, { name, version: '1', resource: listenerResource({ name, routeConfig }) }];
    const listeners = new Map([listener('xds:///echo', 'echo-routes'), listener('xds:///admin', 'admin-routes')]);
    const routes = a.routeFilter(listeners, routeNamesOf);
    assert.equal(routes('echo-routes'), true);
    assert.equal(routes('admin-routes'), false);
    const direct = rules([rule('spiffe://t/p', { route_configs: ['edge-*'] })]).ruleFor(caller({ spiffe: 'spiffe://t/p' }))!.routeFilter(listeners, routeNamesOf);
    assert.equal(direct('edge-1'), true, 'route_configs: routes without a listener');
    assert.equal(direct('echo-routes'), false);
  });

  it('compiles globs with * and ? and nothing else special', () => {
    assert.equal(compileGlob('a.b*').test('a.bcd/e:f'), true);
    assert.equal(compileGlob('a.b*').test('axb'), false);
    assert.equal(compileGlob('n?').test('n1'), true);
    assert.equal(compileGlob('n?').test('n12'), false);
    assert.equal(compileGlob('(x)[y]+').test('(x)[y]+'), true);
  });
});

describe('xDS authorization schema', () => {
  it('applies limit defaults and rejects unknown fields, duplicates and empty rule lists', () => {
    assert.deepEqual(xdsLimits.parse({}), { max_streams_per_identity: 100, max_resource_names: 10_000, max_streams_per_connection: 1_000, max_streams: 20_000, shed_retry_after: 1_000, stalled_stream_timeout: 30_000 });
    assert.throws(() => xdsLimits.parse({ max_stream_count: 1 }), 'an unknown limit');
    assert.throws(() => xdsLimits.parse({ stalled_stream_timeout: 30 }), 'a duration needs a unit');
    assert.throws(() => xdsAuthorizationSettings.parse({ identities: [] }), /at least one identity/);
    assert.throws(() => xdsAuthorizationSettings.parse({ identities: [{ ...rule('a'), extra: 1 }] }));
    assert.throws(() => xdsAuthorizationSettings.parse({ identities: [{ identity: 'a', node_ids: [], clusters: [], listeners: [] }] }), /node.id pattern/);
    assert.throws(() => xdsAuthorizationSettings.parse({ identities: [rule('a.test'), rule('A.test')] }), /already listed at identities\[0\]/);
    assert.throws(() => xdsAuthorizationSettings.parse({ identities: [{ identity: 'a', node_ids: ['*'] }] }), 'clusters and listeners are required');
  });
});

describe('Debouncer', () => {
  /** A manual clock. */
  function fakeTimers() {
    let now = 0;
    let timers: { at: number; callback: () => void; id: number }[] = [];
    let next = 0;
    const api: DebounceTimers = {
      now: () => now,
      setTimeout: (callback, ms) => {
        const id = ++next;
        timers.push({ at: now + ms, callback, id });
        return id;
      },
      clearTimeout: (id) => void (timers = timers.filter((t) => t.id !== id)),
    };
    const advance = (ms: number) => {
      const until = now + ms;
      for (;;) {
        const due = timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        timers = timers.filter((t) => t !== due);
        now = due.at;
        due.callback();
      }
      now = until;
    };
    return { api, advance };
  }

  it('coalesces a burst into one call after the quiet period', () => {
    const clock = fakeTimers();
    let fired = 0;
    const debouncer = new Debouncer(() => fired++, { delayMs: 100, maxDelayMs: 1_000 }, clock.api);
    for (let i = 0; i < 50; i++) {
      debouncer.trigger();
      clock.advance(5);
    }
    assert.equal(fired, 0);
    clock.advance(99);
    assert.equal(fired, 1);
    assert.equal(debouncer.pending, false);
  });

  it('fires at least every maxDelayMs under constant churn', () => {
    const clock = fakeTimers();
    let fired = 0;
    const debouncer = new Debouncer(() => fired++, { delayMs: 100, maxDelayMs: 1_000 }, clock.api);
    for (let i = 0; i < 150; i++) {
      debouncer.trigger();
      clock.advance(20);
    }
    assert.equal(fired, 3, '3 s of churn, a change every 20 ms: fired at 1 s, 2 s and 3 s');
    debouncer.close();
    clock.advance(2_000);
    assert.equal(fired, 3, 'nothing after close');
  });
});
