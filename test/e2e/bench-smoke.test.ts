/**
 * The benchmark harness end to end, in its tiny smoke mode: it must start
 * everything, measure every target it can, stop everything and write its
 * three reports. Figures are never checked (they depend on the machine and
 * on what runs next to the test), only that there are some.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const RUN = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));

describe('npm run bench (smoke mode)', () => {
  it('runs every target and writes latest.md, latest.json and latency.svg', { timeout: 90_000 }, async () => {
    const out = await mkdtemp(path.join(tmpdir(), 'bench-smoke-'));
    const child = spawn(process.execPath, [RUN, '--quick', '--smoke', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    try {
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0, `bench exited with ${code}:\n${output}`);

      const json = JSON.parse(await readFile(path.join(out, 'latest.json'), 'utf8')) as {
        summary: Record<string, { rps: number } | undefined>;
        grpcWeb?: { rows: { protocol: string; rps: number[] }[]; note?: string };
      };
      for (const target of ['direct', 'switchyard']) {
        const rps = json.summary[target]?.rps;
        assert.ok(typeof rps === 'number' && rps > 0, `${target}: expected RPC/s > 0, got ${rps}\n${output}`);
      }
      // The gRPC-Web scenario needs h2load; without it the report says so instead.
      const web = json.grpcWeb;
      assert.ok(web !== undefined, `no gRPC-Web result\n${output}`);
      if (web.note === undefined) {
        assert.deepEqual(web.rows.map((row) => row.protocol), ['gRPC', 'gRPC-Web, HTTP/2', 'gRPC-Web, HTTP/1.1']);
        for (const row of web.rows) assert.ok(row.rps.length > 0 && row.rps.every((rps) => rps > 0), `${row.protocol}: ${JSON.stringify(row.rps)}`);
      }
      const markdown = await readFile(path.join(out, 'latest.md'), 'utf8');
      assert.match(markdown, /\| switchyard \|/);
      // The WebSocket scenario (bench/websocket.ts): sessions held and messages echoed through Switchyard.
      assert.match(markdown, /## WebSocket\n\n.*\n.*\n\| switchyard \| [\d.]+ MiB \| \d+ of \d+ \|/);
      const svg = await readFile(path.join(out, 'latency.svg'), 'utf8');
      assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      assert.match(svg, /<\/svg>\s*$/);
    } finally {
      // On a failed assertion or a timeout the bench may still run: SIGTERM makes it stop its own children.
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await rm(out, { recursive: true, force: true });
    }
  });
});
