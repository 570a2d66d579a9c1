/** WebSocket routes: a virtual host by Host, then the first path that matches (exact or prefix). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { WebSocketRoutes } from '../../src/websocket/routes.ts';

function routes(list: unknown[]): WebSocketRoutes {
  const config = configSchema.parse({
    listeners: [{ name: 'l', port: 0, plaintext: true }],
    clusters: ['a', 'b', 'c', 'd'].map((name) => ({ name, endpoints: [{ address: '10.0.0.1', port: 1 }] })),
    websocket: { routes: list },
  });
  return new WebSocketRoutes(config.websocket.routes);
}

describe('WebSocket routes', () => {
  const table = routes([
    { name: 'exact', match: { path: '/ws' }, cluster: 'a' },
    { name: 'chat-host', match: { hosts: ['chat.example.com'], prefix: '/' }, cluster: 'b' },
    { name: 'wild', match: { hosts: ['*.example.com'], prefix: '/live/' }, cluster: 'c' },
    { name: 'fallback', match: { prefix: '/live' }, cluster: 'd' },
  ]);

  it('matches an exact path without its query, and not a longer one', () => {
    assert.equal(table.match('other.org', '/ws?token=1')?.name, 'exact');
    assert.equal(table.match('other.org', '/ws/more'), undefined);
  });

  it('picks the host\'s own routes first (port and case aside), then those for every host', () => {
    assert.equal(table.match('Chat.Example.com:8443', '/ws')?.name, 'chat-host');
    assert.equal(table.match('a.example.com', '/live/x')?.name, 'wild');
    assert.equal(table.match('a.example.com', '/livestream')?.name, 'fallback');
    assert.equal(table.match('a.example.com', '/ws')?.name, 'exact');
    assert.equal(table.match(undefined, '/nothing'), undefined);
  });

  it('names unnamed routes by their place', () => {
    assert.equal(routes([{ match: { prefix: '/' }, cluster: 'a' }]).match('x', '/')?.name, 'websocket.routes[0]');
  });
});
