/**
 * The real ADS server (src/xds/server, startAdsServer) over mTLS, serving a
 * MutableProvider, for tests of xDS clients (the proxy's AdsClient, the
 * agent, proxyless gRPC): no fake protocol logic, only a recorder around it.
 *
 *   const xds = await XdsTestServer.start({ pki });
 *   xds.set('cluster', [clusterResource(…)]);      // replaces every Cluster; pushed after the server's debounce
 *   xds.requests / xds.responses                     // every message, in order, decoded
 *   await xds.stop(); await xds.restart();           // a crash (every stream ends), then the same port again
 *
 * A grpc-js server interceptor records what each stream receives and sends
 * (the server's own code never knows). `sendRaw` writes a response the
 * server did not plan, to every stream subscribed to the type: for tests of
 * how a client takes responses that other servers send (the server then
 * treats the client's ACK of it as one with a foreign nonce: stale).
 *
 * Authorization: every identity in `identities` (default: the test PKI's
 * client and `spiffe://test/agent`) may claim a node.id matching `nodeIds`
 * (default `*`) and receive everything.
 */
import * as grpc from '@grpc/grpc-js';
import * as net from 'node:net';
import type { EndpointAddress } from '../../src/discovery/source.ts';
import { resourceRoot, resourceTypeOf, TYPE_URL, unpackAny, type AnyMessage, type ResourceType } from '../../src/xds/protos.ts';
import {
  clusterLoadAssignmentResource, clusterResource, listenerResource, routeConfigurationResource, type ClientCapabilities, type XdsLbPolicy,
} from '../../src/xds/resources.ts';
import { startAdsServer, type AdsServer } from '../../src/xds/server/ads-server.ts';
import type { TestPki } from './certs.ts';
import { waitFor } from './harness.ts';
import { MutableProvider } from './xds-provider.ts';

export type Protocol = 'sotw' | 'delta';

export interface RecordedRequest {
  /** Which stream it came on, from 1, in order of opening (numbering goes on across restarts). */
  readonly stream: number;
  readonly protocol: Protocol;
  readonly type: ResourceType | undefined;
  readonly typeUrl: string;
  /** The node of the stream's first request ('' before any). */
  readonly nodeId: string;
  readonly userAgent: string;
  /** As sent on this request: present on a stream's first request only, usually. */
  readonly node: Record<string, unknown> | undefined;
  /** SotW version_info. */
  readonly versionInfo: string;
  /** SotW resource_names, or delta resource_names_subscribe; sorted. */
  readonly resourceNames: readonly string[];
  /** Delta resource_names_unsubscribe. */
  readonly unsubscribe: readonly string[];
  /** Delta initial_resource_versions. */
  readonly initialVersions: Readonly<Record<string, string>>;
  readonly responseNonce: string;
  readonly errorDetail: { readonly code: number; readonly message: string } | undefined;
}

export interface RecordedResponse {
  readonly stream: number;
  /** The node of the stream it went to. */
  readonly nodeId: string;
  readonly protocol: Protocol;
  readonly type: ResourceType | undefined;
  readonly typeUrl: string;
  /** SotW version_info, delta system_version_info. */
  readonly version: string;
  readonly nonce: string;
  /** Names of the resources carried, in order. */
  readonly names: readonly string[];
  /** Delta removed_resources. */
  readonly removed: readonly string[];
  /** Delta: each resource's version, by name. */
  readonly versions: Readonly<Record<string, string>>;
  /** For a Cluster response: the first cluster's lb_policy as sent. */
  readonly lbPolicy: string | undefined;
  /** Injected by sendRaw, not planned by the server. */
  readonly raw: boolean;
}

export interface XdsTestServerOptions {
  readonly pki: TestPki;
  /** Default 0 (any free port); restart() keeps the port. */
  readonly port?: number;
  /** Default: a new MutableProvider. */
  readonly provider?: MutableProvider;
  readonly identities?: readonly string[];
  readonly nodeIds?: readonly string[];
  /** Default 5 ms: pushes follow changes almost at once. */
  readonly debounceMs?: number;
  /** Answer DeltaAggregatedResources with UNIMPLEMENTED, as a control plane without incremental xDS does. */
  readonly sotwOnly?: boolean;
}

interface OpenStream {
  readonly id: number;
  readonly protocol: Protocol;
  readonly call: grpc.ServerInterceptingCall;
  nodeId: string;
  userAgent: string;
  readonly subscribed: Set<string>;
}

const METHOD_PROTOCOL: Record<string, Protocol> = {
  '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources': 'sotw',
  '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources': 'delta',
};

export class XdsTestServer {
  readonly provider: MutableProvider;
  readonly requests: RecordedRequest[] = [];
  readonly responses: RecordedResponse[] = [];
  readonly #options: XdsTestServerOptions;
  readonly #streams = new Set<OpenStream>();
  #server: AdsServer | undefined;
  #port: number;
  #streamIds = 0;
  #rawNonces = 0;

  private constructor(options: XdsTestServerOptions) {
    this.#options = options;
    this.provider = options.provider ?? new MutableProvider();
    this.#port = options.port ?? 0;
  }

  static async start(options: XdsTestServerOptions): Promise<XdsTestServer> {
    const server = new XdsTestServer(options);
    await server.#listen();
    return server;
  }

  get port(): number {
    return this.#port;
  }

  /** `127.0.0.1:<port>`. */
  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  /** The running ADS server (its stats, streamCount); throws while stopped. */
  get server(): AdsServer {
    if (!this.#server) throw new Error('the xDS test server is stopped');
    return this.#server;
  }

  /** Streams opened so far (the id of the last one): requests of streams opened later have a higher `stream`. */
  get streamsOpened(): number {
    return this.#streamIds;
  }

  get openStreams(): number {
    return this.#streams.size;
  }

  /** Replaces every resource of `type` with `resources`, in one change. */
  set(type: ResourceType, resources: readonly AnyMessage[]): void {
    this.provider.batch(() => {
      for (const name of this.provider.names(type)) this.provider.delete(type, name);
      for (const resource of resources) this.provider.set(type, resource);
    });
  }

  /** The version_info of the last response of `type` the server sent ('' before any). */
  lastVersion(type: ResourceType): string {
    return this.responses.filter((r) => r.type === type && !r.raw).at(-1)?.version ?? '';
  }

  /** Writes a response of its own (SotW: exactly `resources`, `version`) to every SotW stream subscribed to `type`. */
  sendRaw(type: ResourceType, resources: readonly AnyMessage[], version: string): void {
    for (const stream of this.#streams) {
      if (stream.protocol !== 'sotw' || !stream.subscribed.has(TYPE_URL[type])) continue;
      const nonce = `raw-${++this.#rawNonces}`;
      this.#recordResponse(stream, { version_info: version, resources, type_url: TYPE_URL[type], nonce }, true);
      stream.call.sendMessage({ version_info: version, resources, type_url: TYPE_URL[type], nonce }, () => {});
    }
  }

  /** Requests with an error_detail, optionally of one type. */
  nacks(type?: ResourceType): RecordedRequest[] {
    return this.requests.filter((r) => r.errorDetail !== undefined && (type === undefined || r.type === type));
  }

  /** Requests acknowledging a response (a nonce, no error_detail), optionally of one type and node. */
  acks(type?: ResourceType, nodeId?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.errorDetail === undefined && r.responseNonce !== '' && (type === undefined || r.type === type) && (nodeId === undefined || r.nodeId === nodeId));
  }

  /** Whether every response the server sent on a stream still open has been answered (ACKed or NACKed) by a later request. */
  allAnswered(): boolean {
    const open = new Set([...this.#streams].map((stream) => stream.id));
    return this.responses.every((response) => response.raw || !open.has(response.stream)
      || this.requests.some((request) => request.stream === response.stream && request.responseNonce === response.nonce));
  }

  /** Waits until the last response of `type` sent to `nodeId` (any node when omitted) is ACKed. */
  async waitForAck(type: ResourceType, nodeId?: string, timeoutMs = 10_000): Promise<void> {
    const streamsOf = () => new Set(this.requests.filter((r) => nodeId === undefined || r.nodeId === nodeId).map((r) => r.stream));
    await waitFor(() => {
      const last = this.responses.filter((r) => r.type === type && !r.raw && streamsOf().has(r.stream)).at(-1);
      return last !== undefined && this.acks(type, nodeId).some((r) => r.responseNonce === last.nonce);
    }, `an ACK of the last ${type} response${nodeId === undefined ? '' : ` to ${nodeId}`}`, timeoutMs);
  }

  /** Waits for a request matching `match` among those recorded after the first `after`. */
  async waitForRequest(match: (request: RecordedRequest) => boolean, what: string, after = 0, timeoutMs = 10_000): Promise<RecordedRequest> {
    await waitFor(() => this.requests.slice(after).some(match), what, timeoutMs);
    return this.requests.slice(after).find(match)!;
  }

  /** Stops at once, as a crash would: every stream ends (UNAVAILABLE) and the port closes. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#streams.clear();
    await server?.close(0);
  }

  /** Listens again on the same port, with the same resources. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#listen();
  }

  close(): Promise<void> {
    return this.stop();
  }

  async #listen(): Promise<void> {
    const { pki } = this.#options;
    const identities = this.#options.identities ?? ['spiffe://test/client', 'spiffe://test/agent'];
    this.#server = await startAdsServer({
      port: this.#port,
      tls: { caPem: pki.caCertPem, certPem: pki.server.certPem, keyPem: pki.server.keyPem },
      provider: this.provider,
      authorization: {
        identities: identities.map((identity) => ({
          identity, node_ids: [...(this.#options.nodeIds ?? ['*'])], clusters: ['*'], listeners: ['*'], route_configs: ['*'],
        })),
      },
      debounceMs: this.#options.debounceMs ?? 5,
      serverOptions: { interceptors: [(method, call) => this.#intercept(method.path, call)] },
    });
    this.#port = this.#server.port;
  }

  #intercept(path: string, next: grpc.ServerInterceptingCallInterface): grpc.ServerInterceptingCall {
    const protocol = METHOD_PROTOCOL[path];
    if (protocol === 'delta' && this.#options.sotwOnly) {
      return new grpc.ServerInterceptingCall(next, {
        start: () => next.sendStatus({ code: grpc.status.UNIMPLEMENTED, details: 'The server does not implement the method DeltaAggregatedResources' }),
      });
    }
    let stream: OpenStream | undefined;
    const call: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(next, {
      start: (proceed) => proceed({
        onReceiveMessage: (message, pass) => {
          if (stream) this.#recordRequest(stream, message);
          pass(message);
        },
        onCancel: () => stream && this.#streams.delete(stream),
      }),
      sendMessage: (message, pass) => {
        if (stream) this.#recordResponse(stream, Buffer.isBuffer(message) ? decodeResponse(stream.protocol, message) : message, false);
        pass(message);
      },
      sendStatus: (status, pass) => {
        if (stream) this.#streams.delete(stream);
        pass(status);
      },
    });
    if (protocol) {
      stream = { id: ++this.#streamIds, protocol, call, nodeId: '', userAgent: '', subscribed: new Set() };
      this.#streams.add(stream);
    }
    return call;
  }

  #recordRequest(stream: OpenStream, message: Record<string, any>): void {
    const node = message.node ?? undefined;
    if (stream.nodeId === '' && node?.id) {
      stream.nodeId = node.id;
      stream.userAgent = node.user_agent_name ?? '';
    }
    const typeUrl: string = message.type_url ?? '';
    stream.subscribed.add(typeUrl);
    const names: string[] = stream.protocol === 'sotw' ? message.resource_names ?? [] : message.resource_names_subscribe ?? [];
    this.requests.push({
      stream: stream.id,
      protocol: stream.protocol,
      type: resourceTypeOf(typeUrl),
      typeUrl,
      nodeId: stream.nodeId,
      userAgent: stream.userAgent,
      node,
      versionInfo: message.version_info ?? '',
      resourceNames: [...names].sort(),
      unsubscribe: [...(message.resource_names_unsubscribe ?? [])],
      initialVersions: { ...(message.initial_resource_versions ?? {}) },
      responseNonce: message.response_nonce ?? '',
      errorDetail: message.error_detail ? { code: message.error_detail.code ?? 0, message: message.error_detail.message ?? '' } : undefined,
    });
  }

  #recordResponse(stream: OpenStream, message: Record<string, any>, raw: boolean): void {
    const typeUrl: string = message.type_url ?? '';
    const type = resourceTypeOf(typeUrl);
    let names: string[];
    const versions: Record<string, string> = {};
    let first: AnyMessage | undefined;
    if (stream.protocol === 'sotw') {
      const resources: AnyMessage[] = message.resources ?? [];
      first = resources[0];
      names = resources.map((any) => nameOf(any));
    } else {
      const resources: { name: string; version: string; resource?: AnyMessage }[] = message.resources ?? [];
      first = resources[0]?.resource;
      names = resources.map((r) => r.name);
      for (const r of resources) versions[r.name] = r.version;
    }
    this.responses.push({
      stream: stream.id,
      nodeId: stream.nodeId,
      protocol: stream.protocol,
      type,
      typeUrl,
      version: stream.protocol === 'sotw' ? message.version_info ?? '' : message.system_version_info ?? '',
      nonce: message.nonce ?? '',
      names,
      removed: [...(message.removed_resources ?? [])],
      versions,
      lbPolicy: type === 'cluster' && first ? String(unpackAny(first).lb_policy ?? 'ROUND_ROBIN') : undefined,
      raw,
    });
  }
}

/** The server writes responses as encoded bytes; decoded here as proto-loader would (snake_case). */
function decodeResponse(protocol: Protocol, bytes: Buffer): Record<string, any> {
  const type = resourceRoot().lookupType(protocol === 'sotw' ? 'envoy.service.discovery.v3.DiscoveryResponse' : 'envoy.service.discovery.v3.DeltaDiscoveryResponse');
  return type.toObject(type.decode(bytes), { enums: String, longs: String, defaults: false, oneofs: true });
}

function nameOf(any: AnyMessage): string {
  const message = unpackAny(any);
  return String(message.name ?? message.cluster_name ?? '');
}

export const ECHO = 'echo';
/** The header ring_hash hashes on (the route's hash_policy). */
export const HASH_HEADER = 'x-user';

/**
 * The chain a proxyless client needs for `xds:///echo`, all named "echo":
 * Listener → RouteConfiguration (prefix "/", hashing HASH_HEADER for
 * ring_hash) → Cluster (EDS, `policy`, translated per client kind) →
 * ClusterLoadAssignment (`endpoints`, localities by zone). Call it again to
 * change the policy or the endpoints.
 */
export function serveEchoChain(provider: MutableProvider, options: { policy?: XdsLbPolicy; endpoints?: readonly EndpointAddress[] }): void {
  const policy = options.policy ?? 'round_robin';
  provider.batch(() => {
    provider.set('listener', listenerResource({ name: ECHO, routeConfig: ECHO }));
    provider.set('route', routeConfigurationResource({ name: ECHO, routes: [{ prefix: '/', cluster: ECHO, ...(policy === 'ring_hash' && { hashHeader: HASH_HEADER }) }] }));
    provider.setByCapability('cluster', ECHO, (capabilities: ClientCapabilities) => clusterResource({ name: ECHO, policy, connectTimeoutMs: 1_000 }, capabilities));
    if (options.endpoints) provider.set('endpoint', clusterLoadAssignmentResource(ECHO, options.endpoints));
  });
}

/**
 * For a test file's last after(), once everything it started is closed. grpc-js's forceShutdown
 * destroys HTTP/2 sessions, not a socket accepted just before the port closed whose TLS handshake had
 * not finished: seen once, a client reconnecting as an ADS server stopped left such a socket open,
 * referenced, with its peer (the client's, unreferenced) in the same process, and the test file never
 * exited. Sockets of servers that no longer listen are destroyed here. (`switchyard control-plane`
 * ends with process.exit, so a real control plane is not held.)
 */
export function destroyStrandedSockets(): void {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  for (const handle of handles) {
    if (!(handle instanceof net.Socket)) continue;
    const server = (handle as net.Socket & { server?: net.Server | null }).server;
    if (server && !server.listening) handle.destroy();
  }
}
