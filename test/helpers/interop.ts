/**
 * For interop tests: peers nobody here wrote, run as the machine has them
 * (Debian packages that .ci/run installs). A missing one fails its test with
 * the package to install, never skips it: a green run means they all ran.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Debian's interpreter: python3-grpcio is installed for it, not for whatever python3 is first in PATH. */
export const PYTHON = '/usr/bin/python3';
const INTEROP_DIR = fileURLToPath(new URL('../interop/', import.meta.url));

/** Throws, naming the Debian package, unless `path` is an executable. */
export function requireTool(path: string, debianPackage: string): void {
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${path} is missing: install Debian's ${debianPackage} (.ci/run does)`);
  }
}

/** Throws unless Debian's python3 can import grpc (python3-grpcio). */
export async function requirePythonGrpc(): Promise<void> {
  requireTool(PYTHON, 'python3');
  const result = await run(PYTHON, ['-c', 'import grpc; print(grpc.__version__)']);
  if (result.code !== 0) throw new Error(`${PYTHON} cannot import grpc: install Debian's python3-grpcio (.ci/run does)\n${result.stderr}`);
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `command` to completion (killed after `timeoutMs`); never rejects for a non-zero exit. */
export function run(command: string, args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 64 << 20, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number' && !error.killed) return reject(error);
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

/** What test/interop/echo_client.py reports: per check, what the C-core client saw, or the error it raised. */
export type PythonClientReport = Record<string, Record<string, unknown>> & { grpc_version?: unknown };

export interface PythonClientOptions {
  /** Over TLS, trusting `ca`, checking the certificate for `serverName`. */
  readonly tls?: { ca: string; serverName: string };
  /** Sent with every call (for routes that match on it). */
  readonly metadata?: Record<string, string>;
}

/** Runs test/interop/echo_client.py against `target`. */
export async function runPythonClient(target: string, options: PythonClientOptions = {}): Promise<PythonClientReport> {
  const args = [
    '-B', // no __pycache__ next to the scripts
    `${INTEROP_DIR}echo_client.py`,
    target,
    ...(options.tls ? ['--ca', options.tls.ca, '--server-name', options.tls.serverName] : []),
    ...Object.entries(options.metadata ?? {}).flatMap(([key, value]) => ['--metadata', `${key}=${value}`]),
  ];
  const result = await run(PYTHON, args);
  if (result.code !== 0) throw new Error(`echo_client.py exited with ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as PythonClientReport;
}

export interface PythonServer {
  readonly name: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts test/interop/echo_server.py (TLS with `tls`), resolved once it listens. */
export async function startPythonServer(name: string, tls?: { cert: string; key: string }): Promise<PythonServer> {
  const args = ['-B', `${INTEROP_DIR}echo_server.py`, name, ...(tls ? ['--cert', tls.cert, '--key', tls.key] : [])];
  const child: ChildProcess = spawn(PYTHON, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (line: Buffer) => resolve((JSON.parse(line.toString()) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`echo_server.py exited with ${code} before listening: ${stderr}`)));
  });
  return {
    name,
    port,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      // Closing its standard input ends it; a kill in case it hangs in shutdown.
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
