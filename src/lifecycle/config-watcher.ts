/**
 * Notices when the config file or a file it names (certificates, keys, CA
 * bundles) changes, for `watch_config: true`.
 *
 * It watches directories, not files: editors and `kubectl` replace files by
 * renaming, and a Kubernetes ConfigMap or Secret volume swaps a `..data`
 * symlink to a new directory, so the file's own inode never changes. Any event
 * in a watched directory starts a short debounce; after it the files' contents
 * are compared with the last ones seen, and only a real change is reported,
 * once per burst of writes.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';

/** Writers touch a file several times (truncate, write, rename; a Secret update swaps several links). */
export const DEBOUNCE_MS = 200;

export interface ConfigWatcher {
  /** Watches this set of files from now on (after a reload that names other TLS files). */
  setFiles(files: readonly string[]): Promise<void>;
  close(): void;
}

/**
 * Starts watching `files` and calls `onChange` after their contents change.
 * `onChange` is not called again until the promise it returns settles; a
 * change during that time is reported after it. Resolves once the current
 * contents have been read, so a change made after that is seen.
 */
export async function watchConfigFiles(files: readonly string[], onChange: () => Promise<void>, debounceMs = DEBOUNCE_MS): Promise<ConfigWatcher> {
  let watched: readonly string[] = [];
  let fingerprint = '';
  const watchers = new Map<string, FSWatcher>();
  let timer: NodeJS.Timeout | undefined;
  let busy = false;
  let again = false;
  let closed = false;

  const schedule = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(check, debounceMs);
    timer.unref();
  };

  const check = async () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const now = await fingerprintOf(watched);
      // A symlink may point somewhere new: watch where it points now.
      await rearm();
      if (now !== fingerprint && !closed) {
        fingerprint = now;
        await onChange().catch(() => {});
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
    const directories = new Set<string>();
    for (const file of watched) {
      directories.add(path.dirname(file));
      const real = await realpath(file).catch(() => undefined);
      if (real) directories.add(path.dirname(real));
    }
    for (const [directory, watcher] of watchers) {
      if (directories.has(directory)) continue;
      watcher.close();
      watchers.delete(directory);
    }
    for (const directory of directories) {
      if (watchers.has(directory) || closed) continue;
      try {
        const watcher = watch(directory, { persistent: false }, schedule);
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
    fingerprint = await fingerprintOf(watched);
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

/** One hash over every file's path and contents (or its read error), in order. */
async function fingerprintOf(files: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const file of files) {
    hash.update(file).update('\0');
    try {
      hash.update(await readFile(file));
    } catch (error) {
      hash.update(`unreadable:${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    hash.update('\0');
  }
  return hash.digest('hex');
}
