/**
 * Calls to the target without its proto: a raw @grpc/grpc-js client whose
 * serializers pass bytes through, so any unary method can be called with the
 * bytes of its request (empty by default: an empty protobuf message, valid
 * for any request type without required fields). One client is one channel
 * to one address, hence one HTTP/2 connection: what a single gRPC client does.
 */
import * as grpc from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';

/** The response header a Switchyard listener with `expose_upstream: true` adds (src/proxy/headers.ts). */
export const UPSTREAM_HEADER = 'x-switchyard-upstream';

export interface TargetOptions {
  /** host:port */
  readonly address: string;
  /** h2c instead of TLS. */
  readonly plaintext: boolean;
  /** CA bundle for the target's certificate; default: the system's roots. */
  readonly caFile?: string | undefined;
  /** Client certificate and key, for a target that asks for one (mTLS). */
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** Name checked against the target's certificate (and sent as SNI/authority). */
  readonly serverName?: string | undefined;
}

export interface RpcSpec {
  /** `/package.Service/Method` */
  readonly method: string;
  readonly request: Buffer;
  readonly metadata: readonly (readonly [string, string])[];
  readonly timeoutMs: number;
}

export interface RpcResult {
  readonly code: number;
  readonly details: string;
  /** The x-switchyard-upstream value, from the headers or (trailers-only responses) the trailers. */
  readonly upstream: string | undefined;
  readonly latencyMs: number;
}

const passThrough = (value: Buffer): Buffer => value;

export async function targetClient(options: TargetOptions): Promise<grpc.Client> {
  let credentials: grpc.ChannelCredentials;
  if (options.plaintext) {
    credentials = grpc.credentials.createInsecure();
  } else {
    const [ca, key, cert] = await Promise.all([options.caFile, options.keyFile, options.certFile].map((file) => (file === undefined ? undefined : readFile(file))));
    credentials = grpc.credentials.createSsl(ca ?? null, key ?? null, cert ?? null);
  }
  return new grpc.Client(options.address, credentials, {
    // Its own connection, never one shared with another client in this process.
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': 16 << 20,
    ...(options.serverName !== undefined && { 'grpc.ssl_target_name_override': options.serverName, 'grpc.default_authority': options.serverName }),
  });
}

/** One unary call; never rejects: a failure is a status. */
export function callUnary(client: grpc.Client, spec: RpcSpec): Promise<RpcResult> {
  const started = performance.now();
  const metadata = new grpc.Metadata();
  for (const [name, value] of spec.metadata) metadata.add(name, value);
  return new Promise((resolve) => {
    let upstream: string | undefined;
    const call = client.makeUnaryRequest(spec.method, passThrough, passThrough, spec.request, metadata, { deadline: Date.now() + spec.timeoutMs }, () => {});
    call.on('metadata', (headers: grpc.Metadata) => {
      upstream ??= headerOf(headers);
    });
    call.on('status', (status: grpc.StatusObject) => {
      upstream ??= headerOf(status.metadata);
      resolve({ code: status.code, details: status.details, upstream, latencyMs: performance.now() - started });
    });
  });
}

function headerOf(metadata: grpc.Metadata): string | undefined {
  const value = metadata.get(UPSTREAM_HEADER)[0];
  return value === undefined ? undefined : String(value);
}

export function statusName(code: number): string {
  return grpc.status[code] ?? `code ${code}`;
}

/** Splits `host:port` (`[v6]:port` for IPv6); undefined when it is not one. */
export function splitHostPort(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1] ?? match[2]!, port };
}
