/** Runs the `switchyard` command as a real child process, on the pinned Node. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** The CLI's entry, run from the sources. */
export const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export function runCli(args: string[]): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface LogEntry {
  readonly msg?: string;
  readonly pid?: number;
  readonly listener?: string;
  readonly address?: string;
  readonly error?: string;
  readonly reason?: string;
}

/** Resolves with the first `count` JSON log lines (complete lines only) that `accept` takes. */
export function logEntries(child: ChildProcess, accept: (entry: LogEntry) => boolean, count = 1): Promise<LogEntry[]> {
  return new Promise((resolve, reject) => {
    let pending = '';
    const found: LogEntry[] = [];
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as LogEntry;
        if (accept(entry) && found.push(entry) === count) resolve(found);
      }
    });
    child.once('exit', (code) => reject(new Error(`switchyard exited with ${code} before logging what was awaited`)));
  });
}

/** Every JSON log line the process writes from now on, appended as it writes them. */
export function collectLogs(child: ChildProcess): LogEntry[] {
  const logs: LogEntry[] = [];
  let pending = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as LogEntry);
  });
  return logs;
}

/** Resolves with the port of the listener once the proxy logs that it listens. */
export async function listeningPort(child: ChildProcess, listener: string): Promise<number> {
  const [entry] = await logEntries(child, (e) => e.msg === 'listening' && e.listener === listener);
  return Number(entry!.address!.split(':').at(-1));
}

export async function exitOf(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr };
}

