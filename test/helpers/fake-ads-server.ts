/**
 * A small state-of-the-world ADS server for tests of xDS clients, until (and
 * besides) the real control plane: @grpc/grpc-js with mTLS, serving canned
 * resources (build them with src/xds/resources.ts) and recording every
 * request it gets, ACKs and NACKs included.
 *
 * Per stream and type it answers a request whose resource names differ from
 * the ones it last saw (a new or changed subscription), and pushes to every
 * subscribed stream when set() changes a type. ACKs and NACKs get no answer,
 * so a NACKed version is never sent again. Responses carry every resource
 * the stream subscribed to (all of them for a wildcard: no names).
 */
import * as grpc from '@grpc/grpc-js';
import { adsService, resourceTypeOf, TYPE_URL, unpackAny, type AnyMessage, type ResourceType } from '../../src/xds/protos.ts';
import type { TestPki } from './certs.ts';
import { waitFor } from './harness.ts';

export interface RecordedRequest {
  /** Which stream it came on, from 1, in order of opening. */
  readonly stream: number;
  readonly type: ResourceType | undefined;
  readonly versionInfo: string;
  readonly resourceNames: readonly string[];
  readonly responseNonce: string;
  readonly node: Record<string, unknown> | undefined;
  readonly errorDetail: { readonly code: number; readonly message: string } | undefined;
  /** The client certificate's subject alternative names, as the server saw them. */
  readonly peerSans: string | undefined;
}

export interface SentResponse {
  readonly stream: number;
  readonly type: ResourceType;
  readonly version: string;
  readonly nonce: string;
  readonly names: readonly string[];
}

export interface FakeAdsServerOptions {
  readonly pki: TestPki;
  /** Default 0: any free port. restart() keeps the port. */
  readonly port?: number;
  /** Default true: client certificates are required. */
  readonly requireClientCertificate?: boolean;
}

interface StreamState {
  readonly id: number;
  readonly call: grpc.ServerDuplexStream<any, any>;
  readonly subscriptions: Map<ResourceType, readonly string[]>;
}

export class FakeAdsServer {
  readonly requests: RecordedRequest[] = [];
  readonly responses: SentResponse[] = [];
  readonly #options: FakeAdsServerOptions;
  readonly #resources = new Map<ResourceType, AnyMessage[]>();
  readonly #versions = new Map<ResourceType, number>();
  readonly #streams = new Set<StreamState>();
  #server: grpc.Server | undefined;
  #port = 0;
  #streamIds = 0;
  #nonces = 0;

  private constructor(options: FakeAdsServerOptions) {
    this.#options = options;
    this.#port = options.port ?? 0;
  }

  static async start(options: FakeAdsServerOptions): Promise<FakeAdsServer> {
    const server = new FakeAdsServer(options);
    await server.#listen();
    return server;
  }

  get port(): number {
    return this.#port;
  }

  /** `127.0.0.1:<port>`, for the xds section's `server`. */
  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  get openStreams(): number {
    return this.#streams.size;
  }

  /** The current version of `type` ("0" before the first set()). */
  version(type: ResourceType): string {
    return String(this.#versions.get(type) ?? 0);
  }

  /** Replaces every resource of `type`, bumps its version and pushes it to each stream subscribed to it. */
  set(type: ResourceType, resources: readonly AnyMessage[]): void {
    this.#resources.set(type, [...resources]);
    this.#versions.set(type, (this.#versions.get(type) ?? 0) + 1);
    for (const stream of this.#streams) if (stream.subscriptions.has(type)) this.#respond(stream, type);
  }

  /** Sends exactly `resources` as a `type` response with `version` to every stream subscribed to it, leaving the stored state alone. */
  sendRaw(type: ResourceType, resources: readonly AnyMessage[], version: string): void {
    for (const stream of this.#streams) {
      if (!stream.subscriptions.has(type)) continue;
      const nonce = String(++this.#nonces);
      this.responses.push({ stream: stream.id, type, version, nonce, names: resources.map((any) => resourceName(type, any)) });
      stream.call.write({ version_info: version, resources, type_url: TYPE_URL[type], nonce });
    }
  }

  /** Requests of `type` with an error_detail. */
  nacks(type?: ResourceType): RecordedRequest[] {
    return this.requests.filter((request) => request.errorDetail !== undefined && (type === undefined || request.type === type));
  }

  /** Requests of `type` acknowledging a response (a nonce, no error_detail). */
  acks(type?: ResourceType): RecordedRequest[] {
    return this.requests.filter((request) => request.errorDetail === undefined && request.responseNonce !== '' && (type === undefined || request.type === type));
  }

  /** Waits for a request matching `match` among those recorded after the first `after` requests. */
  async waitForRequest(match: (request: RecordedRequest) => boolean, what: string, after = 0, timeoutMs = 10_000): Promise<RecordedRequest> {
    await waitFor(() => this.requests.slice(after).some(match), what, timeoutMs);
    return this.requests.slice(after).find(match)!;
  }

  /** Stops at once: every stream ends with an error, as when a control plane dies. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#streams.clear();
    server?.forceShutdown();
  }

  /** Listens again on the same port, with the same resources and versions. */
  async restart(): Promise<void> {
    if (this.#server) await this.close();
    await this.#listen();
  }

  async #listen(): Promise<void> {
    const { pki } = this.#options;
    const server = new grpc.Server();
    server.addService(adsService().service, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<any, any>) => this.#onStream(call),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<any, any>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'delta is not served by the fake' }),
    });
    const credentials = grpc.ServerCredentials.createSsl(pki.caCertPem, [{ cert_chain: pki.server.certPem, private_key: pki.server.keyPem }], this.#options.requireClientCertificate ?? true);
    this.#port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`127.0.0.1:${this.#port}`, credentials, (error, port) => (error ? reject(error) : resolve(port)));
    });
    this.#server = server;
  }

  #onStream(call: grpc.ServerDuplexStream<any, any>): void {
    const stream: StreamState = { id: ++this.#streamIds, call, subscriptions: new Map() };
    this.#streams.add(stream);
    const peerSans = (call.getAuthContext?.() as { sslPeerCertificate?: { subjectaltname?: string } } | undefined)?.sslPeerCertificate?.subjectaltname;
    call.on('data', (request: any) => {
      const type = resourceTypeOf(request.type_url ?? '');
      const names: string[] = [...(request.resource_names ?? [])].sort();
      this.requests.push({
        stream: stream.id,
        type,
        versionInfo: request.version_info ?? '',
        resourceNames: names,
        responseNonce: request.response_nonce ?? '',
        node: request.node ?? undefined,
        errorDetail: request.error_detail ? { code: request.error_detail.code ?? 0, message: request.error_detail.message ?? '' } : undefined,
        peerSans,
      });
      if (!type) return;
      const previous = stream.subscriptions.get(type);
      stream.subscriptions.set(type, names);
      if (previous === undefined || previous.join('\n') !== names.join('\n')) this.#respond(stream, type);
    });
    call.on('error', () => {});
    const forget = () => this.#streams.delete(stream);
    call.on('end', () => {
      forget();
      call.end();
    });
    call.on('cancelled', forget);
  }

  #respond(stream: StreamState, type: ResourceType): void {
    if (!this.#versions.has(type)) return;
    const names = stream.subscriptions.get(type) ?? [];
    const wanted = new Set(names);
    const resources = (this.#resources.get(type) ?? []).filter((any) => names.length === 0 || wanted.has(resourceName(type, any)));
    const version = this.version(type);
    const nonce = String(++this.#nonces);
    this.responses.push({ stream: stream.id, type, version, nonce, names: resources.map((any) => resourceName(type, any)) });
    stream.call.write({ version_info: version, resources, type_url: TYPE_URL[type], nonce });
  }
}

function resourceName(type: ResourceType, any: AnyMessage): string {
  const message = unpackAny(any);
  return String(type === 'endpoint' ? message.cluster_name : message.name);
}
