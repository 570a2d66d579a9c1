import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startEchoSetup, unary, waitFor } from '../helpers/harness.ts';

it('writes one JSON line per RPC to the access log file', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-log-'));
  const file = path.join(dir, 'logs', 'access.log');
  const { backends, proxy, client, close } = await startEchoSetup(1, {
    routes: [{ name: 'echo', match: { service: 'switchyard.demo.v1.Echo' }, cluster: 'echo' }],
    access_log: { output: file },
  });
  try {
    await unary(client, { payload: Buffer.from('abc') });
    await unary(client, { fail_code: grpc.status.NOT_FOUND, fail_message: 'nope' }).catch(() => {});
    await waitFor(() => proxy.records.length === 2, 'two RPC records');
  } finally {
    await close();
  }
  const lines = (await readFile(file, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(lines.length, 2);
  const [ok, notFound] = lines as [Record<string, unknown>, Record<string, unknown>];
  assert.equal(ok.route, 'echo');
  assert.equal(ok.service, 'switchyard.demo.v1.Echo');
  assert.equal(ok.method, 'Unary');
  assert.equal(ok.cluster, 'echo');
  assert.equal(ok.endpoint, `127.0.0.1:${backends[0]!.port}`);
  assert.equal(ok.grpc_status, 0);
  assert.equal(typeof ok.duration_ms, 'number');
  assert.ok((ok.bytes_in as number) > 0 && (ok.bytes_out as number) > 0);
  assert.match(String(ok.peer), /^127\.0\.0\.1:\d+$/);
  assert.ok(!Number.isNaN(Date.parse(String(ok.time))));
  assert.equal(notFound.grpc_status, grpc.status.NOT_FOUND);
});
