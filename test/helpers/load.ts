/** Unary load through a client, counting answers per backend: steady until stopped, or a batch of a given size. */
import type * as grpc from '@grpc/grpc-js';
import type { EchoRequest } from '../../src/demo/echo-service.ts';
import { unary, type EchoClient } from './harness.ts';

export interface SteadyLoad {
  /** Answers so far, by the backend name each response carries. */
  readonly perBackend: ReadonlyMap<string, number>;
  /** Failure messages, `code: details`. */
  readonly failures: readonly string[];
  /** Answers from `backend` so far. */
  count(backend: string): number;
  /** Answers so far, from every backend. */
  answered(): number;
  /** A function giving the answers `backend` has sent from now on. */
  since(backend: string): () => number;
  /** Stops and waits for the RPCs in flight. Safe to call twice. */
  stop(): Promise<void>;
}

export function steadyLoad(client: EchoClient, options: { concurrency?: number; request?: EchoRequest; deadlineMs?: number } = {}): SteadyLoad {
  const perBackend = new Map<string, number>();
  const failures: string[] = [];
  let answered = 0;
  let running = true;
  const workers = Array.from({ length: options.concurrency ?? 4 }, async () => {
    while (running) {
      try {
        const { response } = await unary(client, options.request ?? {}, undefined, { deadline: Date.now() + (options.deadlineMs ?? 5_000) });
        perBackend.set(response.backend, (perBackend.get(response.backend) ?? 0) + 1);
        answered++;
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
    answered: () => answered,
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

/**
 * Sends `total` unary RPCs with at most `concurrency` in flight (each with `metadata()` if given) and
 * counts the answers per backend. Rejects with the first failure.
 */
export async function spread(client: EchoClient, total: number, concurrency: number, metadata?: () => grpc.Metadata): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let sent = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (sent < total) {
      sent++;
      const { response } = await unary(client, {}, metadata?.());
      counts.set(response.backend, (counts.get(response.backend) ?? 0) + 1);
    }
  }));
  return counts;
}
