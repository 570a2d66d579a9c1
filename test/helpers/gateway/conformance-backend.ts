/**
 * gRPC backends for the ported Gateway API conformance cases: each a real
 * @grpc/grpc-js server on its own loopback address that answers the
 * suite's GrpcEcho service with its name and the request headers it saw.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const PROTO = fileURLToPath(new URL('./conformance-echo.proto', import.meta.url));
export const GRPC_ECHO_SERVICE = 'gateway_api_conformance.echo_basic.grpcecho.GrpcEcho';
export const METHODS = ['Echo', 'EchoTwo', 'EchoThree'] as const;
export type EchoMethod = (typeof METHODS)[number];

export interface ConformanceEchoResponse {
  backend: string;
  namespace: string;
  method: string;
  headers: { name: string; value: string }[];
}

type Unary = (request: { nonce?: string }, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<ConformanceEchoResponse>) => grpc.ClientUnaryCall;
export type ConformanceEchoClient = grpc.Client & Record<EchoMethod, Unary>;

let loaded: grpc.GrpcObject | undefined;
function service(): grpc.ServiceClientConstructor {
  loaded ??= grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: true, defaults: true }));
  const pkg = (loaded.gateway_api_conformance as grpc.GrpcObject).echo_basic as grpc.GrpcObject;
  return (pkg.grpcecho as grpc.GrpcObject).GrpcEcho as grpc.ServiceClientConstructor;
}

export interface ConformanceBackend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startConformanceBackend(name: string, namespace: string, host: string, port: number): Promise<ConformanceBackend> {
  const server = new grpc.Server();
  const answer = (method: EchoMethod) => (call: grpc.ServerUnaryCall<unknown, ConformanceEchoResponse>, callback: grpc.sendUnaryData<ConformanceEchoResponse>) => {
    const headers: { name: string; value: string }[] = [];
    for (const [key, values] of Object.entries(call.metadata.toHttp2Headers())) {
      for (const value of Array.isArray(values) ? values : [values]) headers.push({ name: key, value: String(value) });
    }
    callback(null, { backend: name, namespace, method, headers });
  };
  server.addService(service().service, Object.fromEntries(METHODS.map((method) => [method, answer(method)])));
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))));
  return { name, host, port: bound, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

/** A client whose every call carries `authority` as :authority (the conformance suite sets it per request). */
export function conformanceClient(target: string, authority?: string): ConformanceEchoClient {
  const Client = service();
  return new Client(target, grpc.credentials.createInsecure(), authority === undefined ? {} : { 'grpc.default_authority': authority }) as unknown as ConformanceEchoClient;
}

export interface CallResult {
  readonly code: grpc.status;
  readonly details: string;
  readonly response: ConformanceEchoResponse | undefined;
  /** The response headers (initial metadata) the client received. */
  readonly headers: Record<string, string[]>;
}

/** One unary call; never rejects: a failed call is its status. */
export function call(client: ConformanceEchoClient, method: EchoMethod, metadata: Record<string, string> = {}, deadlineMs = 5_000): Promise<CallResult> {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(metadata)) md.add(key, value);
  return new Promise((resolve) => {
    const headers: Record<string, string[]> = {};
    const pending = client[method]({ nonce: String(Math.random()) }, md, { deadline: Date.now() + deadlineMs }, (error, response) => {
      if (error) resolve({ code: error.code, details: error.details, response: undefined, headers });
      else resolve({ code: grpc.status.OK, details: '', response, headers });
    });
    pending.on('metadata', (metadata: grpc.Metadata) => {
      for (const key of Object.keys(metadata.getMap())) headers[key] = metadata.get(key).map(String);
    });
  });
}
