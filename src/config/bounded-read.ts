/**
 * Reading the files a config names (the config itself, certificates, keys, CA
 * bundles) so that a wrong path cannot hang or exhaust the process: only
 * regular files, up to a size cap, within a time limit.
 *
 * A path can point at /dev/zero (read forever), /dev/stdin or a terminal, or a
 * FIFO that nobody writes: a plain open() of a FIFO blocks one of libuv's four
 * threadpool threads until a writer appears, and every later file read (the
 * next reload included) queues behind the blocked ones. So the file is opened
 * with O_NONBLOCK (which never blocks, and changes nothing for a regular file),
 * checked with fstat on the open descriptor (no race with a rename between a
 * stat and the open), and only then read.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** Limits of one read. */
export interface ReadLimits {
  /** A larger file is refused without reading it. */
  readonly maxBytes: number;
  /** The open, check and read together must finish within this. */
  readonly timeoutMs: number;
}

/**
 * The config file: 4 MiB is about 100,000 lines of YAML, far more than a
 * hand-written config; a generated one with thousands of static endpoints is
 * still well under it.
 */
export const CONFIG_FILE_LIMITS: ReadLimits = { maxBytes: 4 * 1024 * 1024, timeoutMs: 5_000 };

/**
 * Certificates, keys and CA bundles: a system CA bundle (about 150 roots) is
 * about 220 KiB; 1 MiB leaves room for four times that.
 */
export const PEM_FILE_LIMITS: ReadLimits = { maxBytes: 1024 * 1024, timeoutMs: 5_000 };

/**
 * Why a file was not read. The message reads after the file's name:
 * `"/dev/zero" is not a regular file (a character device)`; OS errors keep
 * their code (ENOENT, EACCES) in `code`.
 */
export class FileReadError extends Error {
  override readonly name = 'FileReadError';
  readonly code: string;

  constructor(message: string, code: string) {
    super(message);
    this.code = code;
  }
}

/** Bytes read per read() call; the buffer never grows past maxBytes + one chunk. */
const CHUNK_BYTES = 64 * 1024;

/**
 * The contents of `file`, which must be a regular file (or a symlink to one)
 * of at most `limits.maxBytes`. Rejects with FileReadError otherwise, on an
 * OS error, or when it takes longer than `limits.timeoutMs`.
 */
export async function readRegularFile(file: string, limits: ReadLimits): Promise<Buffer> {
  const reading = readChecked(file, limits.maxBytes);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FileReadError(`could not be read within ${formatMs(limits.timeoutMs)} (a network or FUSE file system that does not answer?)`, 'ETIMEDOUT')), limits.timeoutMs);
  });
  // A read that loses the race still settles later; its outcome is not wanted.
  reading.catch(() => {});
  try {
    return await Promise.race([reading, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

async function readChecked(file: string, maxBytes: number): Promise<Buffer> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (error) {
    throw osError(error);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new FileReadError(`is not a regular file (${kindOf(stat)})`, 'ENOTREG');
    if (stat.size > maxBytes) throw tooLarge(stat.size, maxBytes);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
      const { bytesRead } = await handle.read(chunk, 0, CHUNK_BYTES, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      // The file grew after the fstat.
      if (total > maxBytes) throw tooLarge(undefined, maxBytes);
      chunks.push(chunk.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks, total);
  } catch (error) {
    throw error instanceof FileReadError ? error : osError(error);
  } finally {
    await handle.close().catch(() => {});
  }
}

/** `size` is undefined when the file passed the size check and then grew while it was read. */
function tooLarge(size: number | undefined, maxBytes: number): FileReadError {
  return new FileReadError(`is larger than ${formatBytes(maxBytes)} (${size === undefined ? 'it grew while being read' : formatBytes(size, 1)})`, 'EFBIG');
}

function kindOf(stat: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  return 'not a file';
}

/** "ENOENT: no such file or directory", without Node's trailing ", open '<path>'": the caller names the file. */
function osError(error: unknown): FileReadError {
  const { code, message } = error as NodeJS.ErrnoException;
  return new FileReadError(String(message ?? error).replace(/, \w+(?: '.*')?$/, ''), code ?? 'EIO');
}

function formatBytes(bytes: number, digits = 0): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(digits)} GiB`;
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(digits)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(digits)} KiB`;
  return `${bytes} bytes`;
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
