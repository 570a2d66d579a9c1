/**
 * The benchmark backends (bench/backend.ts), each in its own process, and
 * their control paths: GET /_stats (RPCs served so far) and GET /_slow?ms=N.
 */
import * as http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { spawnChild, type Child } from './proc.ts';

const BACKEND = fileURLToPath(new URL('./backend.ts', import.meta.url));

export interface Backend {
  readonly name: string;
  readonly port: number;
  readonly child: Child;
}

/** Starts one backend on an OS-chosen port; resolves once it printed its port (it is listening by then). */
export function startBackend(name: string): Promise<Backend> {
  const child = spawnChild(name, process.execPath, [BACKEND, '--port', '0', '--name', name], { raiseNofile: true });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 10 s: ${child.stderrTail()}`)), 10_000);
    child.onLine((line) => {
      try {
        const { port } = JSON.parse(line) as { port: number };
        clearTimeout(timer);
        resolve({ name, port, child });
      } catch { /* not the ready line */ }
    });
    void child.exited.then(() => { clearTimeout(timer); reject(new Error(`${name} exited: ${child.stderrTail()}`)); });
  });
}

export function startBackends(count: number): Promise<Backend[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => startBackend(`b${i}`)));
}

/** One GET on a fresh connection (control traffic stays off the load's connections). */
function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const request = session.request({ ':method': 'GET', ':path': path });
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => { body += chunk; });
    request.on('error', reject);
    request.on('end', () => { session.close(); resolve(body); });
    request.end();
  });
}

/** RPCs the backend has answered (or started answering) since it started. */
export async function rpcCount(backend: Backend): Promise<number> {
  return (JSON.parse(await get(backend.port, '/_stats')) as { rpcs: number }).rpcs;
}

export async function rpcCounts(backends: readonly Backend[]): Promise<number[]> {
  return Promise.all(backends.map(rpcCount));
}

/** From now on the backend adds `ms` to every unary answer (0 resets). */
export async function setSlow(backend: Backend, ms: number): Promise<void> {
  await get(backend.port, `/_slow?ms=${ms}`);
}

/** Percent of the RPCs between two rpcCounts() readings that each backend took. */
export function split(before: readonly number[], after: readonly number[]): number[] {
  const deltas = after.map((a, i) => a - (before[i] ?? 0));
  const total = deltas.reduce((s, d) => s + d, 0);
  return deltas.map((d) => (total > 0 ? (100 * d) / total : 0));
}
