/**
 * A small ADS server for tests of `switchyard agent` and proxyless clients:
 * @grpc/grpc-js with mTLS, state of the world and delta, serving one fixed
 * chain built with src/xds/resources.ts, translated per client the way the
 * control plane does (capabilitiesOf(node.user_agent_name)):
 *
 *   Listener "echo" → RouteConfiguration "echo" (prefix "/", a header hash for ring_hash)
 *     → Cluster "echo" (EDS, `policy`) → ClusterLoadAssignment "echo" (the endpoints, localities by zone)
 *
 * setEndpoints()/setPolicy() change it and push to every subscribed stream;
 * stop() kills the server as a crash would (every stream fails), restart()
 * listens again on the same port with the same state. Every request and
 * response is recorded. (test/helpers/fake-ads-server.ts is the state-of-the-
 * world-only sibling with canned resources.)
 *
 * SotW: a request is answered when its names differ from the stream's last
 * ones for that type (first request included); ACKs and NACKs are not.
 * Delta: a request is answered with the subscribed resources whose version
 * the client does not hold (initial_resource_versions, then what was sent).
 */
import * as grpc from '@grpc/grpc-js';
import type { EndpointAddress } from '../../src/discovery/source.ts';
import { adsService, TYPE_URL, unpackAny, type AnyMessage, type ResourceType } from '../../src/xds/protos.ts';
import {
  capabilitiesOf, clusterLoadAssignmentResource, clusterResource, listenerResource, routeConfigurationResource,
  type ClientCapabilities, type XdsLbPolicy,
} from '../../src/xds/resources.ts';
import type { TestPki } from './certs.ts';
import { waitFor } from './harness.ts';

export const ECHO = 'echo';
/** The header ring_hash hashes on (the route's hash_policy). */
export const HASH_HEADER = 'x-user';

const TYPE_OF_URL = new Map(Object.entries(TYPE_URL).map(([type, url]) => [url, type as ResourceType]));

export interface MiniRequest {
  readonly stream: number;
  readonly protocol: 'sotw' | 'delta';
  readonly typeUrl: string;
  readonly nodeId: string;
  readonly userAgent: string;
  readonly versionInfo: string;
  readonly nonce: string;
  /** SotW resource_names, or delta resource_names_subscribe. */
  readonly names: readonly string[];
  readonly error: string | undefined;
}

export interface MiniResponse {
  readonly stream: number;
  readonly protocol: 'sotw' | 'delta';
  readonly typeUrl: string;
  readonly version: string;
  readonly nonce: string;
  readonly names: readonly string[];
  /** For clusters: the lb_policy as sent. */
  readonly lbPolicy?: string;
}

interface Stream {
  readonly id: number;
  readonly protocol: 'sotw' | 'delta';
  readonly call: grpc.ServerDuplexStream<any, any>;
  nodeId: string;
  userAgent: string;
  capabilities: ClientCapabilities;
  /** SotW: names per type. Delta: subscribed names ('*' for wildcard). */
  readonly subscriptions: Map<ResourceType, Set<string>>;
  /** Delta: resource versions the client holds, per type. */
  readonly held: Map<ResourceType, Map<string, string>>;
}

export interface MiniAdsServerOptions {
  readonly pki: TestPki;
  readonly endpoints: readonly EndpointAddress[];
  readonly policy?: XdsLbPolicy;
  readonly port?: number;
}

export class MiniAdsServer {
  readonly requests: MiniRequest[] = [];
  readonly responses: MiniResponse[] = [];
  /** Node ids whose streams are ended with PERMISSION_DENIED on their first request, as the control plane refuses a node its rules do not allow. */
  readonly refusedNodes = new Set<string>();
  readonly #pki: TestPki;
  #endpoints: readonly EndpointAddress[];
  #policy: XdsLbPolicy;
  readonly #versions = new Map<ResourceType, number>([['listener', 1], ['route', 1], ['cluster', 1], ['endpoint', 1]]);
  readonly #streams = new Set<Stream>();
  #server: grpc.Server | undefined;
  #port: number;
  #streamIds = 0;
  #nonces = 0;

  private constructor(options: MiniAdsServerOptions) {
    this.#pki = options.pki;
    this.#endpoints = options.endpoints;
    this.#policy = options.policy ?? 'round_robin';
    this.#port = options.port ?? 0;
  }

  static async start(options: MiniAdsServerOptions): Promise<MiniAdsServer> {
    const server = new MiniAdsServer(options);
    await server.#listen();
    return server;
  }

  get port(): number {
    return this.#port;
  }

  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  get openStreams(): number {
    return this.#streams.size;
  }

  setEndpoints(endpoints: readonly EndpointAddress[]): void {
    this.#endpoints = endpoints;
    this.#changed('endpoint');
  }

  setPolicy(policy: XdsLbPolicy): void {
    this.#policy = policy;
    this.#changed('cluster');
    this.#changed('route');
  }

  /** ACKs (a nonce, no error) of `typeUrl`, optionally from one node. */
  acks(typeUrl: string, nodeId?: string): MiniRequest[] {
    return this.requests.filter((r) => r.typeUrl === typeUrl && r.nonce !== '' && r.error === undefined && (nodeId === undefined || r.nodeId === nodeId));
  }

  nacks(): MiniRequest[] {
    return this.requests.filter((r) => r.error !== undefined);
  }

  async waitForAck(typeUrl: string, version: string, nodeId?: string, timeoutMs = 10_000): Promise<void> {
    await waitFor(() => this.acks(typeUrl, nodeId).some((r) => r.versionInfo === version || r.protocol === 'delta'), `an ACK of ${typeUrl} version ${version}`, timeoutMs);
  }

  version(type: ResourceType): string {
    return String(this.#versions.get(type));
  }

  /** Dies as a crashed control plane would: every stream fails at once. */
  stop(): void {
    const server = this.#server;
    this.#server = undefined;
    this.#streams.clear();
    server?.forceShutdown();
  }

  async restart(): Promise<void> {
    this.stop();
    await this.#listen();
  }

  async close(): Promise<void> {
    this.stop();
  }

  async #listen(): Promise<void> {
    const server = new grpc.Server();
    server.addService(adsService().service, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<any, any>) => this.#accept(call, 'sotw'),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<any, any>) => this.#accept(call, 'delta'),
    });
    const credentials = grpc.ServerCredentials.createSsl(this.#pki.caCertPem, [{ cert_chain: this.#pki.server.certPem, private_key: this.#pki.server.keyPem }], true);
    this.#port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`127.0.0.1:${this.#port}`, credentials, (error, port) => (error ? reject(error) : resolve(port)));
    });
    this.#server = server;
  }

  #resources(type: ResourceType, capabilities: ClientCapabilities): Map<string, AnyMessage> {
    switch (type) {
      case 'listener':
        return new Map([[ECHO, listenerResource({ name: ECHO, routeConfig: ECHO })]]);
      case 'route':
        return new Map([[ECHO, routeConfigurationResource({
          name: ECHO,
          routes: [{ prefix: '/', cluster: ECHO, ...(this.#policy === 'ring_hash' && { hashHeader: HASH_HEADER }) }],
        })]]);
      case 'cluster':
        return new Map([[ECHO, clusterResource({ name: ECHO, policy: this.#policy, connectTimeoutMs: 1_000 }, capabilities)]]);
      case 'endpoint':
        return new Map([[ECHO, clusterLoadAssignmentResource(ECHO, this.#endpoints)]]);
    }
  }

  #changed(type: ResourceType): void {
    this.#versions.set(type, this.#versions.get(type)! + 1);
    for (const stream of this.#streams) if (stream.subscriptions.has(type)) this.#send(stream, type, false);
  }

  #accept(call: grpc.ServerDuplexStream<any, any>, protocol: 'sotw' | 'delta'): void {
    const stream: Stream = {
      id: ++this.#streamIds, protocol, call, nodeId: '', userAgent: '', capabilities: capabilitiesOf(undefined), subscriptions: new Map(), held: new Map(),
    };
    this.#streams.add(stream);
    call.on('data', (request: any) => (protocol === 'sotw' ? this.#onSotw(stream, request) : this.#onDelta(stream, request)));
    call.on('error', () => {});
    const forget = () => this.#streams.delete(stream);
    call.on('end', () => {
      forget();
      call.end();
    });
    call.on('cancelled', forget);
  }

  /** False when the stream was refused. */
  #identify(stream: Stream, node: { id?: string; user_agent_name?: string } | undefined): boolean {
    if (stream.nodeId !== '' || !node?.id) return true;
    stream.nodeId = node.id;
    stream.userAgent = node.user_agent_name ?? '';
    stream.capabilities = capabilitiesOf(node.user_agent_name);
    if (!this.refusedNodes.has(node.id)) return true;
    this.#streams.delete(stream);
    stream.call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: `node ${node.id} is not allowed` });
    return false;
  }

  #record(stream: Stream, request: any, names: readonly string[], nonce: string, error: { message?: string } | undefined): void {
    this.requests.push({
      stream: stream.id, protocol: stream.protocol, typeUrl: request.type_url ?? '', nodeId: stream.nodeId, userAgent: stream.userAgent,
      versionInfo: request.version_info ?? '', nonce, names, error: error ? error.message ?? '' : undefined,
    });
  }

  #onSotw(stream: Stream, request: any): void {
    if (!this.#identify(stream, request.node)) return;
    const names: string[] = [...(request.resource_names ?? [])].sort();
    this.#record(stream, request, names, request.response_nonce ?? '', request.error_detail ?? undefined);
    const type = TYPE_OF_URL.get(request.type_url ?? '');
    if (!type) return;
    const previous = stream.subscriptions.get(type);
    stream.subscriptions.set(type, new Set(names));
    if (previous === undefined || [...previous].sort().join('\n') !== names.join('\n')) this.#send(stream, type, true);
  }

  #onDelta(stream: Stream, request: any): void {
    if (!this.#identify(stream, request.node)) return;
    const subscribe: string[] = request.resource_names_subscribe ?? [];
    const unsubscribe: string[] = request.resource_names_unsubscribe ?? [];
    this.#record(stream, request, subscribe, request.response_nonce ?? '', request.error_detail ?? undefined);
    const type = TYPE_OF_URL.get(request.type_url ?? '');
    if (!type) return;
    let names = stream.subscriptions.get(type);
    if (!names) {
      names = new Set(subscribe.length === 0 ? ['*'] : []);
      stream.subscriptions.set(type, names);
      stream.held.set(type, new Map(Object.entries(request.initial_resource_versions ?? {})));
    }
    for (const name of subscribe) names.add(name);
    for (const name of unsubscribe) names.delete(name);
    // Newly subscribed names are sent even when the client holds them.
    for (const name of subscribe) stream.held.get(type)!.delete(name);
    if (subscribe.length > 0 || request.response_nonce === '' || request.response_nonce === undefined) this.#send(stream, type, true);
  }

  #send(stream: Stream, type: ResourceType, requested: boolean): void {
    const all = this.#resources(type, stream.capabilities);
    const subscribed = stream.subscriptions.get(type) ?? new Set();
    const version = this.version(type);
    const nonce = String(++this.#nonces);
    const wanted = [...all].filter(([name]) => subscribed.has(name) || subscribed.has('*') || (stream.protocol === 'sotw' && subscribed.size === 0 && (type === 'listener' || type === 'cluster')));
    let sentNames: string[];
    if (stream.protocol === 'sotw') {
      if (wanted.length === 0 && !requested) return;
      sentNames = wanted.map(([name]) => name);
      stream.call.write({ version_info: version, resources: wanted.map(([, any]) => any), type_url: TYPE_URL[type], nonce });
    } else {
      const held = stream.held.get(type)!;
      const fresh = wanted.filter(([name]) => held.get(name) !== version);
      if (fresh.length === 0) return;
      for (const [name] of fresh) held.set(name, version);
      sentNames = fresh.map(([name]) => name);
      stream.call.write({
        system_version_info: version,
        resources: fresh.map(([name, any]) => ({ name, version, resource: any })),
        type_url: TYPE_URL[type],
        nonce,
      });
    }
    const cluster = type === 'cluster' ? wanted[0]?.[1] : undefined;
    this.responses.push({
      stream: stream.id, protocol: stream.protocol, typeUrl: TYPE_URL[type], version, nonce, names: sentNames,
      ...(cluster && { lbPolicy: String(unpackAny(cluster).lb_policy ?? 'ROUND_ROBIN') }),
    });
  }
}
