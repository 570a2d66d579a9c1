import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onWatchedFilesChanged, watchConfigFiles, type WatchedFilesChange } from '../../src/lifecycle/config-watcher.ts';
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

  /** Writes to `file` in a loop, each write a few ms after the last, until stopped. */
  function busyWriter(file: string, everyMs: number, append = true): { writes: () => number; stop: () => Promise<void> } {
    let running = true;
    let writes = 0;
    const loop = (async () => {
      while (running) {
        if (append) await appendFile(file, `{"msg":"rpc ${writes}"}\n`);
        else await writeFile(file, `a: ${writes}\n`);
        writes++;
        await new Promise((resolve) => setTimeout(resolve, everyMs));
      }
    })();
    return { writes: () => writes, stop: async () => { running = false; await loop; } };
  }

  it('is not held up by a busy file in the same directory (an access log): a change is seen while it keeps being written', () => withDir(async (dir) => {
    const file = path.join(dir, 'switchyard.yaml');
    await writeFile(file, 'a: 1\n');
    const seen: WatchedFilesChange[] = [];
    // The real quiet wait: the log is written far more often than that.
    const watcher = await watchConfigFiles([file], async (change) => { seen.push(change); });
    const log = busyWriter(path.join(dir, 'access.log'), 5);
    try {
      await waitFor(() => log.writes() > 20, 'the log to be busy');
      await writeFile(file, 'a: 2\n');
      const writesAtEdit = log.writes();
      await waitFor(() => seen.length === 1, 'the change, while the log is still written');
      assert.ok(log.writes() > writesAtEdit, 'the log was written meanwhile');
      assert.deepEqual(seen[0]!.files, [file]);
      assert.equal(seen[0]!.cause, 'quiet');
    } finally {
      await log.stop();
      watcher.close();
    }
  }));

  it('checks a watched file that is written without pause at most maxWaitMs after its first change', () => withDir(async (dir) => {
    const file = path.join(dir, 'switchyard.yaml');
    await writeFile(file, 'a: start\n');
    const seen: WatchedFilesChange[] = [];
    const published: WatchedFilesChange[] = [];
    const unsubscribe = onWatchedFilesChanged((change) => published.push(change));
    const watcher = await watchConfigFiles([file], async (change) => { seen.push(change); }, { debounceMs: 100, maxWaitMs: 300 });
    // Written every 10 ms: the quiet wait alone would never end.
    const writer = busyWriter(file, 10, false);
    try {
      await waitFor(() => seen.length >= 2, 'two checks while the file is still being written');
      assert.deepEqual(seen.slice(0, 2).map((change) => change.cause), ['max-wait', 'max-wait']);
      // Timers run on the event loop's millisecond clock, so one set for the bound can fire a fraction of a millisecond early.
      assert.ok(seen[0]!.waitedMs >= 299, `waited ${seen[0]!.waitedMs} ms`);
      assert.deepEqual(published.slice(0, 2), seen.slice(0, 2), 'every change is published for the log');
    } finally {
      await writer.stop();
      unsubscribe();
      watcher.close();
    }
  }));

  it('is not wedged by a watched file replaced with a FIFO nobody writes: the next change is still seen', () => withDir(async (dir) => {
    const file = path.join(dir, 'tls.crt');
    await writeFile(file, 'cert 1\n');
    let changes = 0;
    const watcher = await watchConfigFiles([file], async () => { changes++; }, DEBOUNCE_MS);
    try {
      execFileSync('mkfifo', [path.join(dir, 'fifo')]);
      await rename(path.join(dir, 'fifo'), file);
      await waitFor(() => changes === 1, 'the FIFO to count as a change (the file became unreadable)');
      await writeFile(path.join(dir, 'tls.crt.new'), 'cert 2\n');
      await rename(path.join(dir, 'tls.crt.new'), file);
      await waitFor(() => changes === 2, 'the regular file that replaced it');
    } finally {
      watcher.close();
    }
  }));
});
