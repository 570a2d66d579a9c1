// readRegularFile: only regular files, up to a size cap; devices, FIFOs and
// directories are refused at once, without reading or blocking.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileReadError, readRegularFile } from '../../src/config/bounded-read.ts';

const LIMITS = { maxBytes: 1024 * 1024, timeoutMs: 5_000 };

async function refusal(file: string, limits = LIMITS): Promise<FileReadError> {
  try {
    await readRegularFile(file, limits);
  } catch (error) {
    assert.ok(error instanceof FileReadError, String(error));
    return error;
  }
  assert.fail(`${file} was read`);
}

describe('readRegularFile', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-read-'));
  });

  after(() => rm(dir, { recursive: true, force: true }));

  it('reads a regular file, and one behind a symlink, whole', async () => {
    const file = path.join(dir, 'cert.pem');
    const contents = Buffer.alloc(200_000, 'x'); // several read chunks
    await writeFile(file, contents);
    await symlink(file, path.join(dir, 'link.pem'));
    assert.deepEqual(await readRegularFile(file, LIMITS), contents);
    assert.deepEqual(await readRegularFile(path.join(dir, 'link.pem'), LIMITS), contents);
    assert.deepEqual(await readRegularFile(file, { ...LIMITS, maxBytes: contents.length }), contents, 'exactly the cap is allowed');
  });

  it('refuses a file over the cap without reading it', async () => {
    const file = path.join(dir, 'huge.pem');
    await writeFile(file, '');
    await truncate(file, 8 * 1024 * 1024 * 1024); // sparse: 8 GiB that would take a while to read
    const error = await refusal(file);
    assert.equal(error.message, 'is larger than 1 MiB (8.0 GiB)');
    assert.equal(error.code, 'EFBIG');
  });

  it('refuses /dev/zero, a FIFO nobody writes, a symlink to either, and a directory', async () => {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await symlink('/dev/zero', path.join(dir, 'zero-link'));
    await symlink(fifo, path.join(dir, 'fifo-link'));
    const cases: [string, string][] = [['/dev/zero', 'a character device'], [path.join(dir, 'zero-link'), 'a character device'], [fifo, 'a FIFO'], [path.join(dir, 'fifo-link'), 'a FIFO'], [dir, 'a directory']];
    for (const [file, kind] of cases) {
      const error = await refusal(file);
      assert.equal(error.message, `is not a regular file (${kind})`, file);
      assert.equal(error.code, 'ENOTREG');
    }
  });

  it('passes on OS errors with their code and without the path', async () => {
    const error = await refusal(path.join(dir, 'missing.pem'));
    assert.equal(error.code, 'ENOENT');
    assert.equal(error.message, 'ENOENT: no such file or directory');
  });
});
