// The health port under a flood of connections that send the HTTP/2 preface
// and go silent: it holds at most health.max_connections, closes the rest as
// they come and the idle ones after health.idle_timeout, and however full it
// is, it never takes the file descriptors the serving listener needs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectLogs, exitOf, type LogEntry } from '../helpers/cli.ts';
import { echoClient, startBackends, startEchoSetup, unary, waitFor } from '../helpers/harness.ts';
import { probe } from '../helpers/http-probe.ts';
import { settings } from '../helpers/raw-h2.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

interface Flood {
  /** Connections the server has closed so far. */
  closed(): number;
  /** Connections still open. */
  open(): number;
  destroy(): void;
}

/** `count` connections to `port`, each sending the HTTP/2 preface and a SETTINGS frame, then nothing. */
async function silentHttp2Flood(port: number, count: number): Promise<Flood> {
  const sockets: Socket[] = [];
  let closed = 0;
  let connected = 0;
  for (let i = 0; i < count; i++) {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    socket.once('connect', () => {
      connected++;
      socket.write(Buffer.concat([PREFACE, settings()]));
    });
    socket.once('close', () => { closed++; });
    socket.resume();
    sockets.push(socket);
  }
  await waitFor(() => connected + closed >= count, `${count} connections to be made`, 30_000);
  return { closed: () => closed, open: () => count - closed, destroy: () => { for (const socket of sockets) socket.destroy(); } };
}

describe('the health port under a flood of silent HTTP/2 connections', () => {
  it('holds at most max_connections, closes idle ones after idle_timeout, and serving goes on', async () => {
    const { proxy, client, close } = await startEchoSetup(1, { health: { port: 0, max_connections: 50, idle_timeout: '1s' } });
    const healthPort = proxy.proxy.healthAddress!.port;
    const flood = await silentHttp2Flood(healthPort, 3_000);
    try {
      // Everything past the cap is closed as it arrives.
      await waitFor(() => flood.open() <= 50, 'the connections over the cap to be closed');
      assert.ok(flood.open() > 0, 'the first ones are let in');
      assert.equal((await unary(client, {})).response.backend, 'backend-0', 'the serving listener still accepts and serves');
      // The ones let in sent nothing more: closed once idle.
      await waitFor(() => flood.open() === 0, 'the idle connections to be closed');
      const ready = await probe(healthPort, '/ready');
      assert.deepEqual([ready.status, ready.body], [200, 'ready'], 'a probe gets in again once they are gone');
    } finally {
      flood.destroy();
      await close();
    }
  });

  it('refuses health connections before the process runs short of file descriptors: the serving listener still accepts new clients', async (t) => {
    const backends = await startBackends(1);
    t.after(() => Promise.all(backends.map((b) => b.close())));
    const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-fds-'));
    const config = path.join(dir, 'switchyard.yaml');
    // A cap and a timeout that do not protect, so that the descriptor reserve must.
    await writeFile(config, `
listeners: [{ name: main, port: 0, plaintext: true }]
health: { port: 0, max_connections: 10000, idle_timeout: 10m }
drain: { delay: 1ms, timeout: 1s }
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backends[0]!.port} }] }]
routes: [{ match: { prefix: / }, cluster: echo }]
`);
    const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
    // dash's ulimit sets the soft and the hard limit; Node would raise a lower soft limit to the hard one anyway.
    const child: ChildProcess = spawn('sh', ['-c', 'ulimit -n 256 && exec "$0" "$@"', process.execPath, cli, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = exitOf(child);
    const logs = collectLogs(child) as (LogEntry & { listener?: string; address?: string })[];
    let flood: Flood | undefined;
    try {
      await waitFor(() => logs.some((e) => e.msg === 'listening') && logs.some((e) => e.msg?.startsWith('readiness endpoint listening') === true), 'the proxy to listen');
      const limits = await readFile(`/proc/${child.pid}/limits`, 'utf8');
      assert.match(limits, /Max open files\s+256\s+256/);
      const servingPort = Number(logs.find((e) => e.msg === 'listening')!.address!.split(':').at(-1));
      const healthPort = Number(logs.find((e) => e.msg?.startsWith('readiness endpoint listening') === true)!.address!.split(':').at(-1));

      flood = await silentHttp2Flood(healthPort, 400);
      // The reserve for 256 is 64 descriptors: the health port stops well short of the limit.
      await waitFor(() => flood!.closed() >= 400 - 192, 'the health port to refuse the connections past the reserve');
      const held = flood.open();
      t.diagnostic(`health connections held under a 256-descriptor limit: ${held} of 400`);
      assert.ok(held < 192, `${held} held`);

      // New clients, each on its own connection, as after a rolling restart of the callers.
      const failures: string[] = [];
      for (let i = 0; i < 20; i++) {
        const client = echoClient(`127.0.0.1:${servingPort}`, undefined, { 'grpc.use_local_subchannel_pool': 1 });
        try {
          await unary(client, {}, undefined, { deadline: Date.now() + 5_000 });
        } catch (error) {
          failures.push((error as Error).message);
        } finally {
          client.close();
        }
      }
      assert.deepEqual(failures, []);
    } finally {
      flood?.destroy();
      child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
