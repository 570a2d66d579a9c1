import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ConfigSecrets } from '../../src/config/load.ts';
import { configSchema } from '../../src/config/schema.ts';
import { planReload } from '../../src/lifecycle/reload-plan.ts';

const NONE: ConfigSecrets = { listeners: new Map(), clusters: new Map() };
const cert = (text: string) => ({ cert: Buffer.from(`cert ${text}`), key: Buffer.from(`key ${text}`) });

function state(value: Record<string, unknown>, secrets: ConfigSecrets = NONE) {
  return { config: configSchema.parse(value), secrets };
}

const endpoints = (...ports: number[]) => ports.map((port) => ({ address: '10.0.0.1', port }));

describe('planning a reload', () => {
  it('keeps what did not change, replaces what did, adds and removes the rest', () => {
    const current = state({
      listeners: [{ name: 'a', port: 1, plaintext: true }, { name: 'gone', port: 2, plaintext: true }],
      clusters: [{ name: 'same', endpoints: endpoints(1) }, { name: 'grows', endpoints: endpoints(1) }, { name: 'old', endpoints: endpoints(1) }],
    });
    const next = state({
      listeners: [{ name: 'a', port: 1, plaintext: true }, { name: 'new', port: 3, plaintext: true }],
      clusters: [{ name: 'same', endpoints: endpoints(1) }, { name: 'grows', endpoints: endpoints(1, 2) }, { name: 'fresh', endpoints: endpoints(1) }],
    });
    const plan = planReload(current, next);
    assert.deepEqual(plan.clusters.keep, ['same']);
    assert.deepEqual(plan.clusters.create.map((c) => c.name), ['grows', 'fresh']);
    assert.deepEqual(plan.clusters.retire, ['grows', 'old']);
    assert.deepEqual(plan.summary.clusters, { added: ['fresh'], changed: ['grows'], removed: ['old'], unchanged: ['same'] });
    assert.deepEqual(plan.listeners, { keep: ['a'], update: [], bind: [next.config.listeners[1]], retire: ['gone'] });
    assert.deepEqual(plan.summary.listeners, { added: ['new'], changed: [], removed: ['gone'], unchanged: ['a'], failed: [] });
    assert.equal(plan.summary.health, 'unchanged');
  });

  it('updates a listener in place when only its certificate or HTTP/2 settings change, and rebinds it when its kind or port does', () => {
    const listeners = [
      { name: 'rotated', port: 1, tls: { cert_file: '/c', key_file: '/k' } },
      { name: 'tuned', port: 2, plaintext: true },
      { name: 'secured', port: 3, plaintext: true },
      { name: 'moved', port: 4, plaintext: true },
    ];
    const current = state({ listeners }, { listeners: new Map([['rotated', cert('1')]]), clusters: new Map() });
    const next = state({
      listeners: [
        listeners[0],
        { ...listeners[1], http2: { max_concurrent_streams: 10 }, max_connection_age: '5m' },
        { name: 'secured', port: 3, tls: { cert_file: '/c', key_file: '/k' } },
        { ...listeners[3], port: 5 },
      ],
    }, { listeners: new Map([['rotated', cert('2')], ['secured', cert('2')]]), clusters: new Map() });
    const plan = planReload(current, next);
    assert.deepEqual(plan.listeners.keep, []);
    assert.deepEqual(plan.listeners.update.map((l) => l.name), ['rotated', 'tuned']);
    assert.deepEqual(plan.listeners.bind.map((l) => l.name), ['secured', 'moved']);
    assert.deepEqual(plan.listeners.retire, ['secured', 'moved']);
    assert.deepEqual(plan.summary.listeners.changed, ['rotated', 'tuned', 'secured', 'moved']);
  });

  it('counts a CA bundle with new contents at the same path as a changed cluster', () => {
    const clusters = [{ name: 'tls', endpoints: endpoints(1), tls: { ca_file: '/ca.pem' } }];
    const listeners = [{ name: 'a', port: 1, plaintext: true }];
    const before = state({ listeners, clusters }, { listeners: new Map(), clusters: new Map([['tls', { ca: Buffer.from('ca 1') }]]) });
    const same = state({ listeners, clusters }, { listeners: new Map(), clusters: new Map([['tls', { ca: Buffer.from('ca 1') }]]) });
    const rotated = state({ listeners, clusters }, { listeners: new Map(), clusters: new Map([['tls', { ca: Buffer.from('ca 2') }]]) });
    assert.deepEqual(planReload(before, same).summary.clusters.unchanged, ['tls']);
    assert.deepEqual(planReload(before, rotated).summary.clusters.changed, ['tls']);
  });

  it('reports the readiness endpoint added, moved or removed', () => {
    const listeners = [{ name: 'a', port: 1, plaintext: true }];
    const none = state({ listeners });
    const on = state({ listeners, health: { port: 9 } });
    const moved = state({ listeners, health: { port: 10 } });
    assert.equal(planReload(none, on).summary.health, 'added');
    assert.equal(planReload(on, moved).summary.health, 'changed');
    assert.equal(planReload(on, on).summary.health, 'unchanged');
    assert.equal(planReload(on, none).summary.health, 'removed');
  });
});
