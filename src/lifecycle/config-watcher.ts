/**
 * Notices when the config file or a file it names (certificates, keys, CA
 * bundles) changes, for `watch_config: true` and for certificate rotation.
 *
 * It watches directories, not files: editors and `kubectl` replace files by
 * renaming, and a Kubernetes ConfigMap or Secret volume swaps a `..data`
 * symlink to a new directory, so the file's own inode never changes. Only
 * events for names on the way to a watched file count (the file, and every
 * symlink its path goes through); the rest of the directory is ignored, so an
 * access log written next to the config does not keep a reload waiting. A
 * relevant event starts a short quiet wait, which later events restart, but
 * never past a bound after the first one: a file written without pause is
 * still checked. Then the files' contents are compared with the last ones
 * seen, and only a real change is reported, once per burst of writes.
 */
import { channel, type ChannelListener } from 'node:diagnostics_channel';
import { watch, type FSWatcher } from 'node:fs';
import { lstat, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { CONFIG_FILE_LIMITS, readRegularFile } from '../config/bounded-read.ts';

/** Writers touch a file several times (truncate, write, rename; a Secret update swaps several links). */
export const DEBOUNCE_MS = 200;
/** However often the files keep changing, they are checked this long after the first change at the latest. */
export const MAX_WAIT_MS = 1_000;

export interface WatchOptions {
  /** Quiet time after the last relevant event before the files are compared. Default DEBOUNCE_MS. */
  readonly debounceMs?: number;
  /** Longest wait after the first relevant event of a burst. Default MAX_WAIT_MS. */
  readonly maxWaitMs?: number;
}

/** Why the files were compared, and what differed: published for every reported change. */
export interface WatchedFilesChange {
  /** The watched files whose contents (or readability) changed. */
  readonly files: readonly string[];
  /** `quiet`: no relevant event for debounceMs. `max-wait`: events kept coming; the bound was reached. */
  readonly cause: 'quiet' | 'max-wait';
  /** From the first relevant event of the burst to the comparison. */
  readonly waitedMs: number;
}

export interface ConfigWatcher {
  /** Watches this set of files from now on (after a reload that names other TLS files). */
  setFiles(files: readonly string[]): Promise<void>;
  close(): void;
}

const changes = channel('switchyard:watched-files-changed');

/**
 * Calls `listener` for every change any watcher in this process reports,
 * before its `onChange` runs (`switchyard run` logs them). Returns the
 * function that stops it.
 */
export function onWatchedFilesChanged(listener: (change: WatchedFilesChange) => void): () => void {
  const wrapped: ChannelListener = (message) => listener(message as WatchedFilesChange);
  changes.subscribe(wrapped);
  return () => changes.unsubscribe(wrapped);
}

/**
 * Starts watching `files` and calls `onChange` after their contents change.
 * `onChange` is not called again until the promise it returns settles; a
 * change during that time is reported after it. Resolves once the current
 * contents have been read, so a change made after that is seen. A number for
 * `options` is the debounce (as before options existed).
 */
export async function watchConfigFiles(
  files: readonly string[],
  onChange: (change: WatchedFilesChange) => Promise<void>,
  options: number | WatchOptions = {},
): Promise<ConfigWatcher> {
  const { debounceMs = DEBOUNCE_MS, maxWaitMs = MAX_WAIT_MS } = typeof options === 'number' ? { debounceMs: options } : options;
  let watched: readonly string[] = [];
  let contents = new Map<string, FileContent>();
  /** Per watched directory, the names in it whose events count. */
  let relevant = new Map<string, Set<string>>();
  const watchers = new Map<string, FSWatcher>();
  let timer: NodeJS.Timeout | undefined;
  /** When the first relevant event of the burst under way came; undefined between bursts. */
  let burstStartedAt: number | undefined;
  /** Whether the timer set is the bound's rather than the quiet wait's. */
  let atBound = false;
  let busy = false;
  let again = false;
  let closed = false;

  const schedule = () => {
    if (closed) return;
    const now = performance.now();
    burstStartedAt ??= now;
    clearTimeout(timer);
    const untilBound = burstStartedAt + maxWaitMs - now;
    atBound = untilBound <= debounceMs;
    timer = setTimeout(check, Math.max(0, Math.min(debounceMs, untilBound)));
    timer.unref();
  };

  const onEvent = (directory: string) => (_event: string, name: string | Buffer | null) => {
    // Without a name (some platforms), the event could be about anything.
    if (name !== null && !relevant.get(directory)?.has(name.toString())) return;
    schedule();
  };

  const check = async () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    const waitedMs = burstStartedAt === undefined ? 0 : performance.now() - burstStartedAt;
    const cause = atBound ? 'max-wait' : 'quiet';
    burstStartedAt = undefined;
    try {
      const now = await contentsOf(watched);
      // A symlink may point somewhere new: watch where it points now.
      await rearm();
      const changed = watched.filter((file) => !sameContent(now.get(file), contents.get(file)));
      if (changed.length > 0 && !closed) {
        contents = now;
        const change: WatchedFilesChange = { files: changed, cause, waitedMs: Math.round(waitedMs) };
        if (changes.hasSubscribers) changes.publish(change);
        await onChange(change).catch(() => {});
      }
    } finally {
      busy = false;
    }
    if (again) {
      again = false;
      schedule();
    }
  };

  const rearm = async () => {
    const next = new Map<string, Set<string>>();
    for (const file of watched) {
      for (const [directory, name] of await namesOnTheWay(file)) {
        if (!next.has(directory)) next.set(directory, new Set());
        next.get(directory)!.add(name);
      }
    }
    relevant = next;
    for (const [directory, watcher] of watchers) {
      if (next.has(directory)) continue;
      watcher.close();
      watchers.delete(directory);
    }
    for (const directory of next.keys()) {
      if (watchers.has(directory) || closed) continue;
      try {
        const watcher = watch(directory, { persistent: false }, onEvent(directory));
        // A watched directory that disappears (an old ..2024_… data dir) is forgotten; the next check re-arms.
        watcher.on('error', () => {
          watcher.close();
          if (watchers.get(directory) === watcher) watchers.delete(directory);
          schedule();
        });
        watchers.set(directory, watcher);
      } catch {
        // Missing for now; a change in a parent that is watched re-arms.
      }
    }
  };

  const setFiles = async (next: readonly string[]) => {
    watched = [...new Set(next)];
    contents = await contentsOf(watched);
    await rearm();
  };

  await setFiles(files);
  return {
    setFiles,
    close() {
      closed = true;
      clearTimeout(timer);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}

/** Longest symlink chain followed; the kernel's own limit is 40. */
const MAX_SYMLINK_HOPS = 40;

/**
 * Every (directory, name) that resolving `file` goes through: the file's own
 * entry, every symlink on its path (a Kubernetes volume's `..data`), and the
 * entries those lead to. A change to any of them can change what the path
 * reads; nothing else in those directories can.
 */
async function namesOnTheWay(file: string): Promise<[string, string][]> {
  const names: [string, string][] = [];
  let current = path.resolve(file);
  for (let hop = 0; hop < MAX_SYMLINK_HOPS; hop++) {
    const directory = path.dirname(current);
    const name = path.basename(current);
    names.push([directory, name]);
    // Symlinked directories on the way (`..data` → `..2024_06_01…`).
    for (let prefix = directory; prefix !== path.dirname(prefix); prefix = path.dirname(prefix)) {
      if ((await lstat(prefix).catch(() => undefined))?.isSymbolicLink()) names.push([path.dirname(prefix), path.basename(prefix)]);
    }
    const realDirectory = await realpath(directory).catch(() => directory);
    const real = path.join(realDirectory, name);
    if (realDirectory !== directory) names.push([realDirectory, name]);
    const target = await readlink(real).catch(() => undefined);
    if (target === undefined) break;
    current = path.resolve(realDirectory, target);
  }
  return names;
}

/** A file's bytes, or why it cannot be read. */
type FileContent = Buffer | string;

/**
 * Each file's contents, or why it cannot be read. Read like the loader reads
 * them (regular files of bounded size, with a time limit), so a watched path
 * that becomes a FIFO or /dev/zero cannot block the watcher. The bytes are
 * kept rather than a hash of them: a config, its certificates and descriptor
 * sets are kilobytes (4 MiB each at most, the loader's limit), and hashing
 * would load node:crypto into every proxy (4 MiB of RSS).
 */
async function contentsOf(files: readonly string[]): Promise<Map<string, FileContent>> {
  const contents = new Map<string, FileContent>();
  for (const file of files) {
    try {
      contents.set(file, await readRegularFile(file, CONFIG_FILE_LIMITS));
    } catch (error) {
      contents.set(file, `unreadable: ${(error as Error).message}`);
    }
  }
  return contents;
}

function sameContent(a: FileContent | undefined, b: FileContent | undefined): boolean {
  return typeof a === 'string' || typeof b === 'string' || a === undefined || b === undefined ? a === b : a.equals(b);
}
