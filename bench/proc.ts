/**
 * Child processes for the benchmark: every process the bench starts goes
 * through spawnChild, which puts it in its own process group and remembers
 * it, so that stopAll() (called at the end, on errors, on Ctrl-C and on
 * SIGTERM) kills whole trees (nginx master + workers, sh wrappers) and
 * nothing the bench started outlives it.
 *
 * Also: free ports from the OS, waiting for a port to accept, and running a
 * short command to completion.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Child {
  readonly name: string;
  /** The pid of the process itself (the root of its tree, for /proc metrics). */
  readonly pid: number;
  readonly process: ChildProcess;
  /** Resolves when the process has exited; never rejects. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** The last few KiB of stderr, for error messages. */
  stderrTail(): string;
  /** Calls back with every complete stdout line from now on. */
  onLine(listener: (line: string) => void): void;
  /** SIGTERM to the process group, SIGKILL after graceMs; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Child>();

/**
 * Raises the open-file limit for a child where the OS allows it: `ulimit -n`
 * in a sh wrapper that then execs the command (same pid, so /proc metrics see
 * the real process). Without CAP_SYS_RESOURCE the hard limit stays as it is
 * and the child runs with the hard limit; readers check /proc/<pid>/limits.
 */
const NOFILE_WRAPPER = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"';

export function spawnChild(name: string, command: string, args: readonly string[], options: { raiseNofile?: boolean; cwd?: string } = {}): Child {
  const [cmd, argv] = options.raiseNofile ? ['sh', ['-c', NOFILE_WRAPPER, 'sh', command, ...args]] : [command, [...args]];
  // detached: own process group, so kill(-pid) reaches grandchildren, and a
  // Ctrl-C in the terminal reaches only us; we then stop the children in order.
  const proc = spawn(cmd as string, argv as string[], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...(options.cwd && { cwd: options.cwd }) });
  let stderr = '';
  let exited = false;
  const lineListeners: ((line: string) => void)[] = [];
  let partial = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) for (const listener of lineListeners) listener(line);
  });
  proc.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4096); });
  const exitedPromise = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('error', (error) => { stderr += String(error); exited = true; live.delete(child); resolve({ code: -1, signal: null }); });
    proc.once('exit', (code, signal) => { exited = true; live.delete(child); resolve({ code, signal }); });
  });
  const child: Child = {
    name,
    pid: proc.pid ?? -1,
    process: proc,
    exited: exitedPromise,
    hasExited: () => exited,
    stderrTail: () => stderr.trim(),
    onLine: (listener) => void lineListeners.push(listener),
    async stop(graceMs = 3000) {
      if (exited) return;
      signalGroup(child, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
      await exitedPromise;
      clearTimeout(timer);
      signalGroup(child, 'SIGKILL'); // anything left in the group (e.g. orphaned workers)
    },
  };
  if (proc.pid !== undefined) live.add(child);
  return child;
}

function signalGroup(child: Child, signal: NodeJS.Signals): void {
  try { process.kill(-child.pid, signal); } catch { /* already gone */ }
}

/** Stops every child still running, in parallel. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((child) => child.stop(2000)));
}

/**
 * Makes sure children die with us: on Ctrl-C / SIGTERM (stop them, then
 * exit 130/143), and on any exit (a synchronous SIGKILL to each group, the
 * only thing possible in an 'exit' handler).
 */
export function installCleanup(): void {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping ${live.size} child process(es)\n`);
      void stopAll().finally(() => process.exit(code));
    });
  }
  process.on('exit', () => {
    for (const child of live) signalGroup(child, 'SIGKILL');
    for (const hook of exitHooks) {
      try { hook(); } catch { /* best effort while exiting */ }
    }
  });
}

const exitHooks: (() => void)[] = [];

/** Synchronous clean-up that must happen however the process exits (e.g. removing the temp dir after Ctrl-C). */
export function onExit(hook: () => void): void {
  exitHooks.push(hook);
}

/** Runs a command to completion and returns its output (the process is tracked like any other). */
export async function runToEnd(name: string, command: string, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnChild(name, command, args);
  const lines: string[] = [];
  child.onLine((line) => lines.push(line));
  const { code } = await child.exited;
  await sleep(10); // let the last stdout chunk be delivered
  return { code, stdout: lines.join('\n'), stderr: child.stderrTail() };
}

/**
 * A port that was free a moment ago: bind port 0, read the port, close.
 * haproxy and nginx configs need concrete ports; another process could take
 * it in between, which startWithRetry below absorbs.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** Polls until 127.0.0.1:port accepts a TCP connection; fails if the child exits or timeoutMs passes. */
export async function waitForPort(port: number, child: Child, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.hasExited()) throw new Error(`${child.name} exited before listening on ${port}: ${child.stderrTail() || '(no stderr)'}`);
    if (await tryConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`${child.name} did not listen on ${port} within ${timeoutMs} ms: ${child.stderrTail()}`);
}

/**
 * Starts something that must listen on a port chosen by freePort(), retrying
 * with a new port (up to 3 times) if it exits first, e.g. because the port
 * was taken in the meantime.
 */
export async function startWithRetry<T>(name: string, start: (port: number) => Promise<{ child: Child; value: T }>): Promise<T> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const { child, value } = await start(port);
    try {
      await waitForPort(port, child);
      return value;
    } catch (error) {
      lastError = error;
      await child.stop(500);
    }
  }
  throw new Error(`could not start ${name}: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
}
