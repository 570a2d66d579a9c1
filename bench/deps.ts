/**
 * The external tools the bench compares against or drives: haproxy, nginx
 * and h2load. A full run installs missing ones with apt when it runs as
 * root, and otherwise says exactly what to install and exits 2. A smoke run
 * never installs anything: it runs without what is missing and says so.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { runToEnd } from './proc.ts';

export interface Tools {
  haproxy?: string;
  nginx?: string;
  h2load?: string;
  /** Human-readable lines about what was installed or skipped. */
  notes: string[];
}

const PACKAGES = { haproxy: 'haproxy', nginx: 'nginx-light', h2load: 'nghttp2-client' } as const;
type Tool = keyof typeof PACKAGES;

/** Finds an executable on PATH, plus the sbin directories a non-root PATH often lacks. */
export function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch { /* next */ }
  }
  return undefined;
}

/** BENCH_PRETEND_MISSING=h2load,nginx hides installed tools, to try the paths a fresh machine takes. */
const pretendMissing = new Set((process.env.BENCH_PRETEND_MISSING ?? '').split(',').map((s) => s.trim()));

function find(): Partial<Record<Tool, string>> {
  const found: Partial<Record<Tool, string>> = {};
  for (const tool of Object.keys(PACKAGES) as Tool[]) {
    if (pretendMissing.has(tool)) continue;
    const at = which(tool);
    if (at) found[tool] = at;
  }
  return found;
}

export class MissingToolsError extends Error {}

/**
 * Returns the tools' paths. Missing ones: in smoke mode, noted and left
 * undefined; otherwise installed with apt-get as root, or MissingToolsError.
 */
export async function ensureTools(options: { smoke: boolean; log: (line: string) => void }): Promise<Tools> {
  let found = find();
  const missing = (Object.keys(PACKAGES) as Tool[]).filter((tool) => !found[tool]);
  const notes: string[] = [];
  if (missing.length > 0) {
    const packages = missing.map((tool) => PACKAGES[tool]);
    if (options.smoke) {
      notes.push(`smoke run: ${missing.join(', ')} not installed (apt-get install -y ${packages.join(' ')}); skipped what needs them`);
    } else if (process.getuid?.() === 0) {
      options.log(`installing ${packages.join(' ')} with apt-get`);
      for (const args of [['update'], ['install', '-y', ...packages]]) {
        const result = await runToEnd('apt-get', 'apt-get', args);
        if (result.code !== 0) throw new MissingToolsError(`apt-get ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.slice(-500)}`);
      }
      found = find();
      notes.push(`installed with apt-get: ${packages.join(' ')}`);
      const still = missing.filter((tool) => !found[tool]);
      if (still.length > 0) throw new MissingToolsError(`still missing after apt-get install: ${still.join(', ')}`);
    } else {
      throw new MissingToolsError(`the benchmark needs ${missing.join(', ')}. Install with:\n  sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}\nor run it as root to install them automatically.`);
    }
  }
  return { ...found, notes };
}

/** First line of `tool -v`-style output, for the report's environment section. */
export async function versionOf(command: string, args: readonly string[]): Promise<string> {
  const result = await runToEnd('version', command, args);
  return `${result.stdout}\n${result.stderr}`.trim().split('\n')[0] ?? '';
}
