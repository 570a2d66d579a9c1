/**
 * An Echo backend in a process of its own, so a test can kill -9 it.
 * As a script: `node echo-process.ts NAME PORT` prints {"port":N} once listening.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);

export interface EchoProcess {
  readonly name: string;
  readonly port: number;
  readonly child: ChildProcess;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a backend process on `port` (0: the OS picks) and resolves once it listens. */
export async function spawnEchoProcess(name: string, port = 0): Promise<EchoProcess> {
  const child = spawn(process.execPath, [SELF, name, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const bound = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (line: Buffer) => resolve((JSON.parse(line.toString()) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`echo backend ${name} exited with ${code} before listening: ${stderr}`)));
  });
  return {
    name,
    port: bound,
    child,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}

if (process.argv[1] === SELF) {
  const { startEchoServer } = await import('../../src/demo/echo-service.ts');
  const [name = 'backend', port = '0'] = process.argv.slice(2);
  const server = await startEchoServer({ name, port: Number(port) });
  process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
}
