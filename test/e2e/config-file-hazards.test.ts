// Config and certificate paths that point at something other than a small
// regular file (/dev/zero, a FIFO nobody writes, a huge file), and YAML that
// expands without bound: each is a config error like any other, naming the
// file and the field, at start (`switchyard check`, exit 2) and at reload
// (rejected, the running config stays, and the next reload still works).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rename, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { collectLogs, exitOf, listeningPort, runCli } from '../helpers/cli.ts';
import { echoClient, startBackends, unary, waitFor } from '../helpers/harness.ts';

/** The child's exit, or a failure (and a kill) if it has not exited within `ms`: today's bug is a hang. */
async function exitWithin(child: ChildProcess, ms: number): Promise<{ code: number | null; stderr: string }> {
  const exited = exitOf(child);
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`switchyard did not exit within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([exited, hung]);
  } finally {
    clearTimeout(timer);
  }
}

describe('config files that are not small regular files', () => {
  let pki: TestPki;
  let fifo: string;
  let backends: EchoServerHandle[];

  before(async () => {
    [pki, backends] = await Promise.all([makeTestPki(), startBackends(2)]);
    fifo = path.join(pki.dir, 'nobody-writes-this');
    execFileSync('mkfifo', [fifo]);
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await pki.cleanup();
  });

  const check = async (config: string) => exitWithin(runCli(['check', '--config', config]), 15_000);

  it('an alias bomb is reported as an invalid config, exit 2, in the same format as other config errors', async () => {
    const file = path.join(pki.dir, 'bomb.yaml');
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (const [i, name] of [...'bcdefg'].entries()) levels.push(`${name}: &${name} [${Array(9).fill(`*${'abcdefg'[i]}`).join(',')}]`);
    await writeFile(file, `${levels.join('\n')}\nlisteners: [*g]\n`);
    const bomb = await check(file);
    const bad = path.join(pki.dir, 'typo.yaml');
    await writeFile(bad, 'listeners: [{ name: a, prot: 1, plaintext: true }]\n');
    const typo = await check(bad);
    assert.equal(typo.code, 2, typo.stderr);
    assert.equal(bomb.code, typo.code, bomb.stderr);
    assert.ok(bomb.stderr.startsWith(`${file}: invalid config\n  (file): the anchors and aliases expand to too much data `), bomb.stderr);
    assert.match(bomb.stderr, / \(line 2\)\n$/);
  });

  it('a config file that is /dev/zero, a FIFO or too large: exit 2 at once, naming the file', async () => {
    const huge = path.join(pki.dir, 'huge.yaml');
    await writeFile(huge, '');
    await truncate(huge, 64 * 1024 * 1024);
    for (const [file, why] of [['/dev/zero', /is not a regular file \(a character device\)/], [fifo, /is not a regular file \(a FIFO\)/], [huge, /is larger than 4 MiB \(64\.0 MiB\)/]] as const) {
      const { code, stderr } = await check(file);
      assert.equal(code, 2, stderr);
      assert.match(stderr, new RegExp(`^${file}: invalid config\n {2}\\(file\\): cannot read "${file}": ${why.source}`), stderr);
    }
  });

  it('certificate paths that are /dev/zero, a FIFO or too large: exit 2 at once, naming each field', async () => {
    const hugeCa = path.join(pki.dir, 'huge-ca.pem');
    await writeFile(hugeCa, '');
    await truncate(hugeCa, 2 * 1024 * 1024);
    const config = path.join(pki.dir, 'devices.yaml');
    await writeFile(config, `
listeners:
  - { name: secure, port: 0, tls: { cert_file: /dev/zero, key_file: ${fifo} } }
clusters:
  - { name: echo, endpoints: [{ address: 127.0.0.1, port: 1 }], tls: { ca_file: ${hugeCa} } }
`);
    const { code, stderr } = await check(config);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /\n {2}listeners\[0\]\.tls\.cert_file: cannot read "\/dev\/zero": is not a regular file \(a character device\)\n/);
    assert.match(stderr, new RegExp(`\n {2}listeners\\[0\\]\\.tls\\.key_file: cannot read "${fifo}": is not a regular file \\(a FIFO\\)\n`));
    assert.match(stderr, new RegExp(`\n {2}clusters\\[0\\]\\.tls\\.ca_file: cannot read "${hugeCa}": is larger than 1 MiB \\(2\\.0 MiB\\)\n`));
  });

  it('at reload: each is rejected with its field, the running config keeps serving, and the next good reload applies', async () => {
    const file = path.join(pki.dir, 'reload.yaml');
    const good = (backend: EchoServerHandle) => `
listeners: [{ name: local, port: 0, plaintext: true }]
drain: { delay: 1ms, timeout: 1s }
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backend.port} }] }]
routes: [{ match: { prefix: / }, cluster: echo }]
`;
    // A second cluster, never routed to, only for its ca_file.
    const naming = (ca: string) => good(backends[1]!).replace('clusters: [', `clusters: [{ name: other, endpoints: [{ address: 127.0.0.1, port: 1 }], tls: { ca_file: ${ca} } }, `);
    await writeFile(file, good(backends[0]!));
    const child = runCli(['run', '--config', file]);
    const exited = exitOf(child);
    const logs = collectLogs(child);
    const rejections = () => logs.filter((entry) => entry.msg === 'config reload rejected; the running config stays in force');
    const client = echoClient(`127.0.0.1:${await listeningPort(child, 'local')}`);
    try {
      assert.equal((await unary(client, {})).response.backend, 'backend-0');
      const attempts: [string, () => Promise<void>, RegExp][] = [
        ['a ca_file that is a FIFO', () => writeFile(file, naming(fifo)), new RegExp(`clusters\\[0\\]\\.tls\\.ca_file: cannot read "${fifo}": is not a regular file \\(a FIFO\\)`)],
        ['a ca_file that is /dev/zero', () => writeFile(file, naming('/dev/zero')), /clusters\[0\]\.tls\.ca_file: cannot read "\/dev\/zero": is not a regular file \(a character device\)/],
        ['the config file replaced by a FIFO', async () => {
          const swap = path.join(pki.dir, 'reload-fifo');
          execFileSync('mkfifo', [swap]);
          await rename(swap, file);
        }, /\(file\): cannot read ".*reload\.yaml": is not a regular file \(a FIFO\)/],
      ];
      for (const [what, apply, expected] of attempts) {
        const before = rejections().length;
        await apply();
        child.kill('SIGHUP');
        await waitFor(() => rejections().length > before, `the rejection of ${what}`);
        assert.match(rejections().at(-1)!.error!, expected, what);
        assert.equal((await unary(client, {})).response.backend, 'backend-0', `the old config still serves after ${what}`);
      }
      await rm(file);
      await writeFile(file, good(backends[1]!));
      child.kill('SIGHUP');
      await waitFor(() => logs.some((entry) => entry.msg === 'config reloaded'), 'the good reload after them');
      assert.equal((await unary(client, {})).response.backend, 'backend-1');
    } finally {
      client.close();
      child.kill('SIGTERM');
    }
    const { code, stderr } = await exited;
    assert.equal(code, 0, stderr);
  });
});
