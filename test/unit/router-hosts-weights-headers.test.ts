/** The route table's virtual hosts, weighted clusters, path regexes and header edits (src/router/). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { RouteTable } from '../../src/router/route-table.ts';
import { applyHeaderEdit, compileHeaderEdit } from '../../src/router/header-edit.ts';
import { hostOf } from '../../src/router/virtual-hosts.ts';
import { WeightedPicker } from '../../src/router/weighted-picker.ts';

const CLUSTERS = ['a', 'b', 'c', 'd'].map((name) => ({ name, endpoints: [{ address: '127.0.0.1', port: 1 }] }));

function table(routes: Record<string, unknown>[]): RouteTable {
  const config = configSchema.parse({ listeners: [{ name: 'l', port: 0, plaintext: true }], clusters: CLUSTERS, routes });
  return new RouteTable(config.routes);
}

function clusterFor(routes: RouteTable, path: string, authority?: string, headers: Record<string, string> = {}): string | undefined {
  const route = routes.match(path, { ':path': path, ...(authority !== undefined && { ':authority': authority }), ...headers });
  return route?.action.kind === 'cluster' ? route.action.cluster : undefined;
}

test('a virtual host is chosen by authority: exact, then the longest wildcard, then "*"; no fall-through to another host', () => {
  const routes = table([
    { match: { prefix: '/', hosts: ['*.bar.com'] }, cluster: 'a' },
    { match: { service: 'svc.A', hosts: ['foo.bar.com'] }, cluster: 'b' },
    { match: { prefix: '/', hosts: ['*.foo.bar.com'] }, cluster: 'c' },
    { match: { prefix: '/' }, cluster: 'd' },
  ]);
  assert.equal(clusterFor(routes, '/svc.A/M', 'foo.bar.com'), 'b');
  assert.equal(clusterFor(routes, '/svc.B/M', 'foo.bar.com'), undefined, 'the exact host has no route for svc.B');
  assert.equal(clusterFor(routes, '/svc.B/M', 'x.foo.bar.com:8443'), 'c');
  assert.equal(clusterFor(routes, '/svc.B/M', 'a.b.bar.com'), 'a', 'a wildcard spans several labels');
  assert.equal(clusterFor(routes, '/svc.B/M', 'bar.com'), 'd', '*.bar.com does not match bar.com');
  assert.equal(clusterFor(routes, '/svc.B/M', 'FOO.BAR.COM'), undefined, 'case-insensitive: the exact host');
  assert.equal(clusterFor(routes, '/svc.B/M'), 'd');
});

test('without a "*" host, an authority no host serves matches nothing', () => {
  const routes = table([{ match: { prefix: '/', hosts: ['bar.com'] }, cluster: 'a' }]);
  assert.equal(clusterFor(routes, '/s/m', 'bar.com'), 'a');
  assert.equal(clusterFor(routes, '/s/m', 'baz.com'), undefined);
});

test('hostOf drops the port and lower-cases, IPv6 included', () => {
  assert.equal(hostOf('Example.COM:443'), 'example.com');
  assert.equal(hostOf('[::1]:80'), '[::1]');
  assert.equal(hostOf('plain'), 'plain');
});

test('weighted clusters: exactly 70/30/0 over every 100 RPCs, interleaved', () => {
  const routes = table([{ match: { prefix: '/' }, weighted_clusters: [{ cluster: 'a', weight: 70 }, { cluster: 'b', weight: 30 }, { cluster: 'c', weight: 0 }] }]);
  const counts = new Map<string, number>();
  const firstTen: string[] = [];
  for (let i = 0; i < 500; i++) {
    const cluster = clusterFor(routes, '/s/m')!;
    counts.set(cluster, (counts.get(cluster) ?? 0) + 1);
    if (i < 10) firstTen.push(cluster);
  }
  assert.deepEqual(Object.fromEntries(counts), { a: 350, b: 150 });
  assert.equal(firstTen.filter((c) => c === 'b').length, 3, `spread, not in blocks: ${firstTen.join(',')}`);
  assert.throws(() => new WeightedPicker([['x', 0]]), /weight above 0/);
});

test('a weighted route needs a weight above 0 and known clusters', () => {
  assert.throws(() => table([{ match: { prefix: '/' }, weighted_clusters: [{ cluster: 'a', weight: 0 }] }]), /at least one weight must be above 0/);
  assert.throws(() => table([{ match: { prefix: '/' }, weighted_clusters: [{ cluster: 'zz', weight: 1 }] }]), /no cluster named/);
  assert.throws(() => table([{ match: { prefix: '/' }, cluster: 'a', weighted_clusters: [{ cluster: 'a', weight: 1 }] }]), /exactly one action/);
});

test('path_regex matches the whole path: a method of any service', () => {
  const routes = table([{ match: { path_regex: '/[^/]+/Echo' }, cluster: 'a' }]);
  assert.equal(clusterFor(routes, '/x.Svc/Echo'), 'a');
  assert.equal(clusterFor(routes, '/x.Svc/EchoTwo'), undefined);
  assert.throws(() => table([{ match: { path_regex: '(' }, cluster: 'a' }]), /invalid regular expression/);
});

test('header edits: remove, then set (replacing), then add (a further value); names case-insensitive', () => {
  const edit = compileHeaderEdit({ remove: ['x-remove'], set: [{ name: 'x-set', value: 'new' }], add: [{ name: 'x-add', value: 'two' }, { name: 'x-fresh', value: 'f' }] })!;
  const headers = applyHeaderEdit({ 'x-remove': 'gone', 'x-set': 'old', 'x-add': 'one', keep: 'k' }, edit);
  assert.deepEqual(headers, { 'x-set': 'new', 'x-add': ['one', 'two'], 'x-fresh': 'f', keep: 'k' });
  assert.equal(compileHeaderEdit({ remove: [], set: [], add: [] }), undefined);
  const config = configSchema.parse({ listeners: [{ name: 'l', port: 0, plaintext: true }], clusters: CLUSTERS, routes: [{ match: { prefix: '/' }, cluster: 'a', request_headers: { set: [{ name: 'X-Upper', value: 'v' }] } }] });
  assert.deepEqual(config.routes[0]!.request_headers, { remove: [], set: [{ name: 'x-upper', value: 'v' }], add: [] });
  for (const name of [':authority', 'connection', 'grpc-timeout', 'te', 'bad header']) {
    assert.throws(() => table([{ match: { prefix: '/' }, cluster: 'a', request_headers: { remove: [name] } }]), /cannot be edited|expected an HTTP header name/, name);
  }
});
