import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { RouteTable } from '../../src/router/route-table.ts';

function table(routes: unknown[]): RouteTable {
  const config = configSchema.parse({ listeners: [{ name: 'l', port: 0, plaintext: true }], clusters: [{ name: 'a', endpoints: [{ address: '10.0.0.1', port: 1 }] }, { name: 'b', endpoints: [{ address: '10.0.0.2', port: 1 }] }], routes });
  return new RouteTable(config.routes);
}

const target = (routes: RouteTable, path: string, headers: Record<string, string | string[]> = {}) => {
  const route = routes.match(path, headers);
  return route === undefined ? undefined : route.action.kind === 'cluster' ? route.action.cluster : `direct:${route.action.code}`;
};

describe('route matching', () => {
  it('the first route that matches wins, in order', () => {
    const routes = table([
      { match: { method: '/shop.v1.Orders/Get' }, cluster: 'b' },
      { match: { service: 'shop.v1.Orders' }, cluster: 'a' },
      { match: { prefix: '/' }, direct_response: { code: 'UNIMPLEMENTED', message: 'no' } },
    ]);
    assert.equal(target(routes, '/shop.v1.Orders/Get'), 'b');
    assert.equal(target(routes, '/shop.v1.Orders/List'), 'a');
    assert.equal(target(routes, '/shop.v1.Other/Get'), `direct:12`);
  });

  it('a service matches /service/ only, never a service whose name it starts', () => {
    const routes = table([{ match: { service: 'shop.v1.Orders' }, cluster: 'a' }]);
    assert.equal(target(routes, '/shop.v1.Orders/Get'), 'a');
    assert.equal(target(routes, '/shop.v1.OrdersAdmin/Get'), undefined);
  });

  it('header matches are ANDed; exact, prefix, regex, present and invert read the joined value', () => {
    const routes = table([
      { match: { prefix: '/', headers: [{ name: 'x-tenant', exact: 'blue' }, { name: 'x-canary', present: true }] }, cluster: 'b' },
      { match: { prefix: '/', headers: [{ name: 'x-tenant', prefix: 'gr' }] }, cluster: 'a' },
      { match: { prefix: '/', headers: [{ name: 'x-version', regex: '^v[0-9]+$', invert: true }] }, direct_response: { code: 'NOT_FOUND', message: 'old client' } },
    ]);
    assert.equal(target(routes, '/a.B/C', { 'x-tenant': 'blue', 'x-canary': '1' }), 'b');
    assert.equal(target(routes, '/a.B/C', { 'x-tenant': 'blue', 'x-version': 'v2' }), undefined, 'only one of two headers: the first route does not match');
    assert.equal(target(routes, '/a.B/C', { 'x-tenant': 'green', 'x-version': 'v3' }), 'a');
    assert.equal(target(routes, '/a.B/C', { 'x-version': 'beta' }), 'direct:5');
  });
});
