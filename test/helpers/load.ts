/** Steady unary load through a client, counting answers per backend and every failure, until stopped. */
import type { EchoRequest } from '../../src/demo/echo-service.ts';
import { unary, type EchoClient } from './harness.ts';

export interface SteadyLoad {
  /** Answers so far, by the backend name each response carries. */
  readonly perBackend: ReadonlyMap<string, number>;
  /** Failure messages, `code: details`. */
  readonly failures: readonly string[];
  /** Answers from `backend` so far. */
  count(backend: string): number;
  /** A function giving the answers `backend` has sent from now on. */
  since(backend: string): () => number;
  /** Stops and waits for the RPCs in flight. Safe to call twice. */
  stop(): Promise<void>;
}

export function steadyLoad(client: EchoClient, options: { concurrency?: number; request?: EchoRequest; deadlineMs?: number } = {}): SteadyLoad {
  const perBackend = new Map<string, number>();
  const failures: string[] = [];
  let running = true;
  const workers = Array.from({ length: options.concurrency ?? 4 }, async () => {
    while (running) {
      try {
        const { response } = await unary(client, options.request ?? {}, undefined, { deadline: Date.now() + (options.deadlineMs ?? 5_000) });
        perBackend.set(response.backend, (perBackend.get(response.backend) ?? 0) + 1);
      } catch (error) {
        const { code, details, message } = error as { code?: number; details?: string; message: string };
        failures.push(code === undefined ? message : `${code}: ${details}`);
      }
    }
  });
  const count = (backend: string) => perBackend.get(backend) ?? 0;
  return {
    perBackend,
    failures,
    count,
    since(backend) {
      const start = count(backend);
      return () => count(backend) - start;
    },
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}
