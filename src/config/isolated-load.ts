/**
 * loadConfig with the parsing and validation in a child process, for the
 * long-running proxy: zod, yaml and the schemas cost a process some 15 MiB
 * that it would keep for its whole life to run a few milliseconds at start and
 * at each reload. The child (parse-process.ts) reads, parses and validates the
 * file and sends back the validated config, serialized as structuredClone
 * would copy it (v8.serialize), or the problems; this process then reads the
 * files the config names (config-files.ts), exactly as loadConfig does. A
 * child that cannot start or fails is an error naming the file, as a bad
 * config is.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deserialize } from 'node:v8';
import { ConfigError, readReferencedFiles, type LoadedConfig } from './config-files.ts';
import type { ConfigProblem } from './problems.ts';
import type { SwitchyardConfig } from './schema.ts';

/** What the child writes to its stdout. */
export type ParseOutcome = { readonly config: SwitchyardConfig } | { readonly problems: readonly ConfigProblem[] };

/** The child's script, next to this one: .ts from the sources, .js when built (the bundle writes it beside its chunks, build/bundle.ts). */
const CHILD = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './parse-process.ts' : './parse-process.js', import.meta.url));
/** Reading a file is bounded at 5 s and parsing 4 MiB takes well under one: past this the child is stuck. */
const CHILD_TIMEOUT_MS = 30_000;

/** loadConfig, validated in a child process; throws ConfigError for every problem, as loadConfig does. */
export async function loadConfigIsolated(file: string): Promise<LoadedConfig> {
  const absolute = path.resolve(file);
  const outcome = await parseInChild(file);
  if ('problems' in outcome) throw new ConfigError(file, outcome.problems);
  const loaded = await readReferencedFiles(outcome.config, path.dirname(absolute), file);
  return { ...loaded, file: absolute, files: [absolute, ...loaded.files] };
}

function parseInChild(file: string): Promise<ParseOutcome> {
  return new Promise((resolve, reject) => {
    const failed = (why: string) => reject(new Error(`${file}: the config could not be checked: ${why}`));
    const child = spawn(process.execPath, [CHILD, file], { stdio: ['ignore', 'pipe', 'pipe'], timeout: CHILD_TIMEOUT_MS });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.once('error', (error) => failed(`cannot start ${process.execPath}: ${error.message}`));
    child.once('close', (code, signal) => {
      if (code !== 0) return failed(`the checking process ended with ${signal ?? `exit code ${code}`}: ${Buffer.concat(err).toString().trim().slice(-2000)}`);
      try {
        resolve(deserialize(Buffer.concat(out)) as ParseOutcome);
      } catch (error) {
        failed(`its answer did not read back: ${(error as Error).message}`);
      }
    });
  });
}
