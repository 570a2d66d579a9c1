/** Real processes on loopback for end-to-end tests: Echo backends, a proxy, and grpc-js clients. */
import * as grpc from '@grpc/grpc-js';
import { configSchema } from '../../src/config/schema.ts';
import { loadEchoPackage, startEchoServer, type EchoClient, type EchoServerHandle, type EchoServerOptions, type EchoRequest, type EchoResponse } from '../../src/demo/echo-service.ts';
export type { EchoClient };
import { Switchyard } from '../../src/switchyard.ts';
import type { ConfigSecrets } from '../../src/config/load.ts';
import type { RpcRecord } from '../../src/grpc/rpc-record.ts';
import { readFile } from 'node:fs/promises';
import pino, { type Logger } from 'pino';
import type { TestPki } from './certs.ts';
import { startSecureProxy } from './secure-proxy.ts';

/** How each Echo backend is started: everything but its name ("backend-<i>") and port (0). */
export type BackendOptions = Omit<EchoServerOptions, 'name' | 'port'>;

export async function startBackends(count: number, options: BackendOptions = {}): Promise<EchoServerHandle[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => startEchoServer({ name: `backend-${i}`, ...options })));
}

export function staticCluster(name: string, backends: readonly EchoServerHandle[], extra: Record<string, unknown> = {}) {
  return { name, endpoints: backends.map((b) => ({ address: '127.0.0.1', port: b.port })), ...extra };
}

export interface RunningProxy {
  readonly proxy: Switchyard;
  readonly port: number;
  readonly records: RpcRecord[];
  close(): Promise<void>;
}

/** Starts a proxy with one h2c listener on port 0 unless the config names listeners itself. */
export async function startProxy(config: Record<string, unknown>, secrets?: ConfigSecrets, logger: Logger = pino({ level: 'silent' })): Promise<RunningProxy> {
  const parsed = configSchema.parse({
    listeners: [{ name: 'main', port: 0, plaintext: true }],
    ...config,
  });
  const records: RpcRecord[] = [];
  const proxy = await Switchyard.start({
    config: parsed,
    ...(secrets && { secrets }),
    logger,
    onRpcEnd: (record) => records.push(record),
  });
  return { proxy, port: proxy.listeners[0]!.address.port, records, close: () => proxy.stop(1_000) };
}


export function echoClient(target: string, credentials = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}): EchoClient {
  const { Echo } = loadEchoPackage();
  return new Echo(target, credentials, {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    ...options,
  });
}

export interface UnaryResult {
  response: EchoResponse;
  headers: grpc.Metadata;
  trailers: grpc.Metadata;
}

export function unary(client: EchoClient, request: EchoRequest, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<UnaryResult> {
  return new Promise((resolve, reject) => {
    let headers = new grpc.Metadata();
    let trailers = new grpc.Metadata();
    const call = client.Unary(request, metadata, options, (error, response) => {
      if (error) reject(error);
      else setImmediate(() => resolve({ response: response!, headers, trailers }));
    });
    call.on('metadata', (m: grpc.Metadata) => { headers = m; });
    call.on('status', (s: grpc.StatusObject) => { trailers = s.metadata; });
  });
}

/** Rejects with the ServiceError of a call that should fail; fails the test if it succeeds. */
export async function expectStatus(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** Polls `check` until it returns true or the deadline passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * The JSON lines of a log file a running process writes; none if it does not exist yet. Only whole
 * lines count: the process may be writing one as the file is read.
 */
export async function readJsonLines<T>(file: string): Promise<T[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as T);
}

export interface EchoSetup {
  readonly backends: EchoServerHandle[];
  readonly proxy: RunningProxy;
  readonly client: EchoClient;
  /** Closes the client, stops the proxy, then closes the backends. Safe after the proxy was stopped by the test. */
  close(): Promise<void>;
}

export interface EchoSetupOptions {
  /** Options of the "echo" cluster beside its endpoints (lb_policy, outlier_detection, circuit_breakers…). */
  cluster?: Record<string, unknown>;
  /** How each backend is started (a health service, grpc.Server options). */
  backend?: BackendOptions;
  /** Channel options of the client. */
  client?: grpc.ClientOptions;
  /**
   * Serve TLS with `pki`'s server certificate on a listener "secure" (its `tls` extended by `listener`),
   * the files read as `switchyard run` reads them; the client connects to localhost and trusts the test CA.
   */
  tls?: { pki: TestPki; listener?: Record<string, unknown> };
  /** The proxy's logger; silent unless given. */
  logger?: Logger;
}

/**
 * The common arrangement: `backendCount` Echo backends in one cluster "echo", a proxy routing
 * everything to it (plus `config`, which may override routes, clusters or listeners; a function
 * of the backends where the override needs their ports), and a client.
 */
export async function startEchoSetup(
  backendCount: number,
  config: Record<string, unknown> | ((backends: EchoServerHandle[]) => Record<string, unknown>) = {},
  options: EchoSetupOptions = {},
): Promise<EchoSetup> {
  const backends = await startBackends(backendCount, options.backend);
  const full = {
    clusters: [staticCluster('echo', backends, options.cluster)],
    routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
    ...(options.tls && { listeners: [{ name: 'secure', port: 0, tls: { cert_file: options.tls.pki.server.cert, key_file: options.tls.pki.server.key, ...options.tls.listener } }] }),
    ...(typeof config === 'function' ? config(backends) : config),
  };
  let proxy: RunningProxy;
  try {
    proxy = options.tls ? await startSecureProxy(full, options.logger) : await startProxy(full, undefined, options.logger);
  } catch (error) {
    await Promise.all(backends.map((b) => b.close()));
    throw error;
  }
  const client = options.tls
    ? echoClient(`localhost:${proxy.port}`, grpc.credentials.createSsl(options.tls.pki.caCertPem), options.client)
    : echoClient(`127.0.0.1:${proxy.port}`, undefined, options.client);
  return {
    backends,
    proxy,
    client,
    close: async () => {
      client.close();
      await proxy.close();
      await Promise.all(backends.map((b) => b.close()));
    },
  };
}
