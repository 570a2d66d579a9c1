/**
 * grpc.health.v1 on a port of its own, for kubelet probes and balancers' health checks: a
 * separate grpc.Server with tiny limits, so a health port reachable by more than intended
 * cannot be used to push large messages or hold many streams.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';

/** Health requests are a service name; 1 KiB is plenty. */
export const HEALTH_MAX_MESSAGE_BYTES = 1024;
/** Per connection: a few Watch streams and Checks, not more. */
export const HEALTH_MAX_CONCURRENT_STREAMS = 10;

export interface HealthServerOptions {
  /** 0 (the default): the OS picks; read the bound port from the result. */
  readonly port?: number;
  /** Default 0.0.0.0, so kubelet can reach it on the pod IP; NetworkPolicy decides who may. */
  readonly address?: string;
  /** Fully qualified service names reported besides "" (the server as a whole). */
  readonly services?: readonly string[];
  /** Status of every service at start. Default SERVING. */
  readonly initialStatus?: 'SERVING' | 'NOT_SERVING';
  readonly credentials?: grpc.ServerCredentials;
}

export interface HealthServer {
  readonly port: number;
  readonly server: grpc.Server;
  /** Sets one service ("" is the server as a whole). A service never named before becomes known. */
  setServing(service: string, serving: boolean): void;
  /** NOT_SERVING for "" and every known service: what a shutdown does first. */
  setAllNotServing(): void;
  /** The status of every known service. */
  statuses(): Record<string, 'SERVING' | 'NOT_SERVING'>;
  /** Stops the server; open Watch streams are cancelled. */
  close(): Promise<void>;
}

export async function startHealthServer(options: HealthServerOptions = {}): Promise<HealthServer> {
  const initial = options.initialStatus ?? 'SERVING';
  const statuses = new Map<string, 'SERVING' | 'NOT_SERVING'>([['', initial], ...(options.services ?? []).map((s) => [s, initial] as const)]);
  const health = new HealthImplementation(Object.fromEntries(statuses));
  const server = new grpc.Server({
    'grpc.max_receive_message_length': HEALTH_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': HEALTH_MAX_MESSAGE_BYTES,
    'grpc.max_concurrent_streams': HEALTH_MAX_CONCURRENT_STREAMS,
  });
  health.addToServer(server);
  const host = options.address ?? '0.0.0.0';
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${options.port ?? 0}`, options.credentials ?? grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  const set = (service: string, status: 'SERVING' | 'NOT_SERVING') => {
    statuses.set(service, status);
    health.setStatus(service, status);
  };
  let closing: Promise<void> | undefined;
  return {
    port,
    server,
    setServing: (service, serving) => set(service, serving ? 'SERVING' : 'NOT_SERVING'),
    setAllNotServing: () => {
      for (const service of statuses.keys()) set(service, 'NOT_SERVING');
    },
    statuses: () => Object.fromEntries(statuses),
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        // Watch streams never end by themselves: cancel them rather than wait.
        server.forceShutdown();
        resolve();
      })),
  };
}
