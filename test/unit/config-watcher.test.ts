import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { watchConfigFiles } from '../../src/lifecycle/config-watcher.ts';
import { waitFor } from '../helpers/harness.ts';

const DEBOUNCE_MS = 50;

async function withDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-watch-'));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('watching the config files', () => {
  it('reports one change for a burst of writes, and none for a write that changes nothing', () => withDir(async (dir) => {
    const file = path.join(dir, 'switchyard.yaml');
    await writeFile(file, 'a: 1\n');
    let changes = 0;
    const watcher = await watchConfigFiles([file], async () => { changes++; }, DEBOUNCE_MS);
    try {
      for (let i = 2; i <= 5; i++) await writeFile(file, `a: ${i}\n`);
      await waitFor(() => changes === 1, 'one change');
      // Rewriting the same bytes, or touching another file in the directory, is no change.
      await writeFile(file, 'a: 5\n');
      await writeFile(path.join(dir, 'unrelated.txt'), 'x');
      const settled = Date.now() + DEBOUNCE_MS * 4;
      await waitFor(() => Date.now() > settled, 'the debounce to pass');
      assert.equal(changes, 1);
    } finally {
      watcher.close();
    }
  }));

  it('sees an editor-style replace (write a temporary file, rename it over the original)', () => withDir(async (dir) => {
    const file = path.join(dir, 'switchyard.yaml');
    await writeFile(file, 'a: 1\n');
    let changes = 0;
    const watcher = await watchConfigFiles([file], async () => { changes++; }, DEBOUNCE_MS);
    try {
      await writeFile(path.join(dir, '.switchyard.yaml.swp'), 'a: 2\n');
      await rename(path.join(dir, '.switchyard.yaml.swp'), file);
      await waitFor(() => changes === 1, 'the change');
    } finally {
      watcher.close();
    }
  }));

  it('follows a Kubernetes volume update: the ..data symlink swapped to a new directory', () => withDir(async (dir) => {
    // What kubelet lays out for a ConfigMap or Secret volume.
    await mkdir(path.join(dir, '..v1'));
    await writeFile(path.join(dir, '..v1', 'switchyard.yaml'), 'a: 1\n');
    await writeFile(path.join(dir, '..v1', 'tls.crt'), 'cert 1\n');
    await symlink('..v1', path.join(dir, '..data'));
    await symlink('..data/switchyard.yaml', path.join(dir, 'switchyard.yaml'));
    await symlink('..data/tls.crt', path.join(dir, 'tls.crt'));
    let changes = 0;
    const watcher = await watchConfigFiles([path.join(dir, 'switchyard.yaml'), path.join(dir, 'tls.crt')], async () => { changes++; }, DEBOUNCE_MS);
    try {
      const swap = async (version: string, cert: string) => {
        await mkdir(path.join(dir, version));
        await writeFile(path.join(dir, version, 'switchyard.yaml'), 'a: 1\n');
        await writeFile(path.join(dir, version, 'tls.crt'), cert);
        await symlink(version, path.join(dir, '..data_tmp'));
        await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
      };
      // Only the certificate changes: it is a change all the same.
      await swap('..v2', 'cert 2\n');
      await rm(path.join(dir, '..v1'), { recursive: true });
      await waitFor(() => changes === 1, 'the first swap');
      await swap('..v3', 'cert 3\n');
      await rm(path.join(dir, '..v2'), { recursive: true });
      await waitFor(() => changes === 2, 'the second swap');
    } finally {
      watcher.close();
    }
  }));

  it('watches the files it is told to after a reload, and reports a change made during a reload afterwards', () => withDir(async (dir) => {
    const file = path.join(dir, 'switchyard.yaml');
    const other = path.join(dir, 'other', 'ca.pem');
    await mkdir(path.dirname(other));
    await writeFile(file, 'a: 1\n');
    await writeFile(other, 'ca 1\n');
    let changes = 0;
    let release: (() => void) | undefined;
    const watcher = await watchConfigFiles([file], () => {
      changes++;
      return changes === 1 ? new Promise<void>((resolve) => { release = resolve; }) : Promise.resolve();
    }, DEBOUNCE_MS);
    try {
      await writeFile(file, 'a: 2\n');
      await waitFor(() => changes === 1, 'the first change');
      // While the first "reload" runs, the config changes again.
      await writeFile(file, 'a: 3\n');
      const settled = Date.now() + DEBOUNCE_MS * 4;
      await waitFor(() => Date.now() > settled, 'the debounce to pass');
      assert.equal(changes, 1, 'not reported while the reload runs');
      release!();
      await waitFor(() => changes === 2, 'the change made during the reload');

      await watcher.setFiles([file, other]);
      await writeFile(other, 'ca 2\n');
      await waitFor(() => changes === 3, 'a change in a newly watched file');
    } finally {
      watcher.close();
    }
  }));
});
