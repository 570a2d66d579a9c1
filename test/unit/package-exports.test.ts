// The kit is used by importing the package: its exports must resolve to the built files (npm ci builds them).
import { test } from 'node:test';
import assert from 'node:assert/strict';

test('switchyard/kit/server and switchyard/kit/client resolve to the built kit', async () => {
  const server = await import('switchyard/kit/server');
  const client = await import('switchyard/kit/client');
  assert.equal(typeof server.gracefulShutdown, 'function');
  assert.equal(typeof server.startHealthServer, 'function');
  assert.equal(typeof client.createClient, 'function');
});
