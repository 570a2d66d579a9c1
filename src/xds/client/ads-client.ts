/**
 * A client of Envoy's v3 Aggregated Discovery Service on @grpc/grpc-js: one
 * bidirectional stream carries every resource type, state of the world
 * (StreamAggregatedResources) or incremental (DeltaAggregatedResources: only
 * changed resources travel, and a reconnecting client names the versions it
 * holds per resource, so a large EDS is not sent again after a replica
 * restart). `protocol: 'auto'` asks for delta and falls back to state of the
 * world for good when the server does not implement it.
 *
 * Per type it holds a subscription (names, or the wildcard for Listener and
 * Cluster), the resources it accepted and their version. Each response is
 * decoded, merged into what the client holds (Listener and Cluster responses
 * carry the whole set; RouteConfiguration and ClusterLoadAssignment responses
 * only the resources they name) and handed to the type's handler; the client
 * then ACKs it (the response's version_info and nonce) or, when the handler
 * throws, NACKs it (the last good version, the nonce, and error_detail with
 * code INVALID_ARGUMENT and the handler's message) and keeps what it had.
 * Responses of one type are handled one at a time, in order; types do not wait
 * for each other, so a handler may wait for another type's resources.
 *
 * When the stream ends it reconnects after a jittered exponential backoff (on
 * a new channel), sending the versions it holds so the server need not resend
 * what did not change. Nothing here knows what the resources mean: the proxy
 * (src/xds/client/xds-proxy-feed.ts) and `switchyard agent` give it handlers.
 */
import * as grpc from '@grpc/grpc-js';
import { VERSION } from '../../version.ts';
import { adsService, resourceTypeOf, TYPE_URL, type AnyMessage, type ResourceType } from '../protos.ts';
import { retryPushbackMs } from '../pushback.ts';
import { Backoff, type BackoffOptions } from './backoff.ts';

export type AdsConnectionState = 'connecting' | 'connected' | 'disconnected';
export type AdsProtocol = 'sotw' | 'delta' | 'auto';

import { received, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse, type DiscoveryRequest, type DiscoveryResponse, type Received } from './ads-messages.ts';
import { channelCredentials, checkSubscription, countsByType, decode, FULL_SET_TYPES, normalize, sameSubscription, WILDCARD } from './ads-support.ts';

export { channelCredentials, WILDCARD, type AdsResource, type AdsSubscription, type AdsTls } from './ads-support.ts';
import type { AdsResource, AdsSubscription, AdsTls } from './ads-support.ts';

export interface AdsClientLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** What a handler is asked to accept. */
export interface AdsUpdate {
  readonly type: ResourceType;
  readonly version: string;
  readonly nonce: string;
  /** Every resource of the type the client will hold if the update is accepted. */
  readonly resources: ReadonlyMap<string, AdsResource>;
  /** Names this response carried. */
  readonly received: readonly string[];
  /** Names held before and gone now (Listener and Cluster responses, which carry the whole set). */
  readonly removed: readonly string[];
}

/** Resolves (or returns) to accept the update: ACK. Throws or rejects to refuse it: NACK with the error's message. */
export type AdsHandler = (update: AdsUpdate) => void | Promise<void>;

/** Resources to start with, e.g. from a cache: their versions are sent when the stream opens. */
export interface AdsInitialState {
  readonly version: string;
  readonly resources: readonly AnyMessage[];
}

export interface AdsClientOptions {
  /** The control plane, `host:port`. */
  readonly server: string;
  readonly tls: AdsTls;
  /** node.id and node.cluster; the control plane binds them to the certificate's identity. */
  readonly node: { readonly id: string; readonly cluster?: string | undefined };
  /** node.user_agent_name, which the control plane reads as the client's capabilities. Default "switchyard". */
  readonly userAgentName?: string | undefined;
  readonly logger?: AdsClientLogger | undefined;
  readonly backoff?: Partial<BackoffOptions> | undefined;
  readonly initial?: Partial<Record<ResourceType, AdsInitialState>> | undefined;
  /** Called on every change of `state`. */
  readonly onStateChange?: ((state: AdsConnectionState) => void) | undefined;
  /** Extra channel options (merged over the client's own). */
  readonly channelOptions?: grpc.ChannelOptions | undefined;
  /** Default 'sotw'. 'auto': delta, or state of the world from the first UNIMPLEMENTED on. */
  readonly protocol?: AdsProtocol | undefined;
}

export interface AdsNack {
  readonly type: ResourceType;
  /** The version refused. */
  readonly version: string;
  readonly message: string;
  /** ms since the epoch. */
  readonly at: number;
}

export interface AdsClientStatus {
  readonly server: string;
  readonly state: AdsConnectionState;
  /** When a response was last accepted (ms since the epoch); undefined before the first. */
  readonly lastUpdateAt: number | undefined;
  /** The version accepted last, per type. */
  readonly versions: Readonly<Partial<Record<ResourceType, string>>>;
  /** Responses accepted and refused, per type, since the client was made. */
  readonly acks: Readonly<Record<ResourceType, number>>;
  readonly nacks: Readonly<Record<ResourceType, number>>;
  readonly lastNack: AdsNack | undefined;
  /** Why the last stream ended or could not open. */
  readonly lastError: string | undefined;
  /** The protocol of the current (or next) stream. */
  readonly protocol: 'sotw' | 'delta';
}

interface Watch {
  names: AdsSubscription;
  readonly handler: AdsHandler;
}

interface OpenStream {
  readonly id: number;
  readonly protocol: 'sotw' | 'delta';
  readonly client: grpc.Client;
  readonly call: grpc.ClientDuplexStream<DiscoveryRequest | DeltaDiscoveryRequest, DiscoveryResponse | DeltaDiscoveryResponse>;
  /** Delta: what this stream subscribes to, per type (changes are sent as differences). */
  readonly subscribed: Map<ResourceType, AdsSubscription>;
  /** Latest nonce per type on this stream, sent with subscription changes. */
  readonly nonces: Map<ResourceType, string>;
  /** Types requested on this stream: an empty list is only sent to unsubscribe (first, it would mean the wildcard). */
  readonly requested: Set<ResourceType>;
  nodeSent: boolean;
  responded: boolean;
  ended: boolean;
}

/** google.rpc.Code INVALID_ARGUMENT, what Envoy puts in a NACK's error_detail. */
const INVALID_ARGUMENT = 3;

export class AdsClient {
  readonly #server: string;
  #tls: AdsTls;
  readonly #node: Record<string, unknown>;
  readonly #logger: AdsClientLogger | undefined;
  readonly #backoff: Backoff;
  readonly #onStateChange: AdsClientOptions['onStateChange'];
  readonly #channelOptions: grpc.ChannelOptions;
  readonly #watches = new Map<ResourceType, Watch>();
  readonly #accepted = new Map<ResourceType, ReadonlyMap<string, AdsResource>>();
  readonly #versions = new Map<ResourceType, string>();
  /** Delta: the version of each held resource, as the server named it; unknown for resources that came otherwise. */
  readonly #resourceVersions = new Map<ResourceType, Map<string, string>>();
  #protocol: 'sotw' | 'delta';
  readonly #fallBack: boolean;
  /** One chain per type: a type's responses are handled in order. */
  readonly #queues = new Map<ResourceType, Promise<void>>();
  readonly #acks = countsByType();
  readonly #nacks = countsByType();
  #lastNack: AdsNack | undefined;
  #lastError: string | undefined;
  #lastUpdateAt: number | undefined;
  #state: AdsConnectionState = 'disconnected';
  #stream: OpenStream | undefined;
  #streamIds = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Streams that ended since the proxy was last connected. */
  #failuresInRow = 0;
  #started = false;
  #closed = false;

  constructor(options: AdsClientOptions) {
    this.#server = options.server;
    this.#tls = options.tls;
    this.#logger = options.logger;
    this.#backoff = new Backoff(options.backoff);
    this.#onStateChange = options.onStateChange;
    this.#channelOptions = options.channelOptions ?? {};
    this.#protocol = options.protocol === 'delta' || options.protocol === 'auto' ? 'delta' : 'sotw';
    this.#fallBack = options.protocol === 'auto';
    this.#node = {
      id: options.node.id,
      cluster: options.node.cluster ?? '',
      user_agent_name: options.userAgentName ?? 'switchyard',
      user_agent_version: VERSION,
    };
    for (const [type, initial] of Object.entries(options.initial ?? {}) as [ResourceType, AdsInitialState | undefined][]) {
      if (!initial) continue;
      const resources = new Map<string, AdsResource>();
      for (const [i, any] of initial.resources.entries()) {
        const decoded = decode(type, any, i);
        resources.set(decoded.name, decoded);
      }
      this.#accepted.set(type, resources);
      this.#versions.set(type, initial.version);
    }
  }

  /**
   * Subscribes to `names` of `type` (WILDCARD: all of them; Listener and
   * Cluster only) and hands every response of that type to `handler`. One
   * watch per type. May be called before or after start().
   */
  watch(type: ResourceType, names: AdsSubscription, handler: AdsHandler): void {
    if (this.#watches.has(type)) throw new Error(`${type} is watched already; use subscribe() to change the names`);
    checkSubscription(type, names);
    this.#watches.set(type, { names: normalize(names), handler });
    this.#pruneToSubscription(type);
    this.#sendSubscription(type);
  }

  /** Changes the names watched for `type`; resources no longer named are dropped. Sends a request only if they changed. */
  subscribe(type: ResourceType, names: AdsSubscription): void {
    const watch = this.#watches.get(type);
    if (!watch) throw new Error(`${type} is not watched; call watch() first`);
    checkSubscription(type, names);
    const next = normalize(names);
    if (sameSubscription(watch.names, next)) return;
    watch.names = next;
    this.#pruneToSubscription(type);
    this.#sendSubscription(type);
  }

  /** Opens the stream; reconnects by itself until close(). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#connect();
  }

  /** Ends the stream and stops reconnecting. Handlers still running finish, but nothing more is sent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream) {
      stream.ended = true;
      stream.call.cancel();
      stream.client.close();
    }
    this.#setState('disconnected');
  }

  /** Certificates for the next connection (the open one keeps its own). */
  setTls(tls: AdsTls): void {
    this.#tls = tls;
  }

  get state(): AdsConnectionState {
    return this.#state;
  }

  /** What the client holds of `type`: the last accepted resources. */
  resources(type: ResourceType): ReadonlyMap<string, AdsResource> {
    return this.#accepted.get(type) ?? new Map();
  }

  /** The version last accepted for `type`; '' before the first. */
  version(type: ResourceType): string {
    return this.#versions.get(type) ?? '';
  }

  status(): AdsClientStatus {
    return {
      server: this.#server,
      state: this.#state,
      lastUpdateAt: this.#lastUpdateAt,
      versions: Object.fromEntries(this.#versions),
      acks: { ...this.#acks },
      nacks: { ...this.#nacks },
      lastNack: this.#lastNack,
      lastError: this.#lastError,
      protocol: this.#protocol,
    };
  }

  #connect(): void {
    if (this.#closed) return;
    this.#setState('connecting');
    const { Client } = adsService();
    const { credentials, options } = channelCredentials(this.#server, this.#tls);
    const client = new Client(this.#server, credentials, { ...options, ...this.#channelOptions });
    const methods = client as unknown as Record<'StreamAggregatedResources' | 'DeltaAggregatedResources', () => OpenStream['call']>;
    const protocol = this.#protocol;
    const call = protocol === 'delta' ? methods.DeltaAggregatedResources() : methods.StreamAggregatedResources();
    const stream: OpenStream = {
      id: ++this.#streamIds, protocol, client, call, subscribed: new Map(), nonces: new Map(), requested: new Set(), nodeSent: false, responded: false, ended: false,
    };
    this.#stream = stream;
    this.#logger?.debug({ server: this.#server, stream: stream.id }, 'xDS: opening the ADS stream');

    call.on('data', (response: DiscoveryResponse | DeltaDiscoveryResponse) => this.#onResponse(stream, received(protocol, response)));
    call.on('metadata', () => this.#markConnected(stream));
    // 'status' always comes, once; 'error' carries the same news for a failed call.
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => this.#onStreamEnd(stream, status));
    this.#watchChannel(stream);
    for (const type of this.#watches.keys()) this.#sendSubscription(type);
  }

  /** READY on the stream's channel means the TLS handshake with the control plane succeeded. */
  #watchChannel(stream: OpenStream): void {
    const channel = stream.client.getChannel();
    const check = () => {
      if (stream.ended || this.#stream !== stream) return;
      const current = channel.getConnectivityState(false);
      if (current === grpc.connectivityState.READY) this.#markConnected(stream);
      channel.watchConnectivityState(current, Infinity, check);
    };
    check();
  }

  #markConnected(stream: OpenStream): void {
    if (stream.ended || this.#stream !== stream || this.#state === 'connected') return;
    this.#logger?.info({ server: this.#server }, 'xDS: connected to the control plane');
    this.#failuresInRow = 0;
    this.#setState('connected');
  }

  #onStreamEnd(stream: OpenStream, status: grpc.StatusObject): void {
    if (stream.ended) return;
    stream.ended = true;
    stream.client.close();
    if (this.#stream !== stream || this.#closed) return;
    this.#stream = undefined;
    const reason = `${grpc.status[status.code] ?? status.code}: ${status.details || 'stream ended'}`;
    this.#lastError = reason;
    if (stream.protocol === 'delta' && this.#fallBack && status.code === grpc.status.UNIMPLEMENTED && !stream.responded) {
      // A control plane without incremental xDS: state of the world from now on, at once.
      this.#protocol = 'sotw';
      this.#logger?.info({ server: this.#server }, 'xDS: the control plane does not serve delta xDS; using state of the world');
      this.#retryTimer = setTimeout(() => this.#connect(), 0);
      this.#retryTimer.unref();
      return;
    }
    // A stream that worked starts the backoff over; one that never answered makes it grow.
    if (stream.responded) this.#backoff.reset();
    // A control plane that sheds load says how long to wait, already spread (and the next connection, a new
    // channel, may reach another replica): that wait replaces the backoff, which does not grow for it.
    const pushback = retryPushbackMs(status.metadata);
    const delay = pushback > 0 ? pushback : this.#backoff.next();
    const wasConnected = this.#state === 'connected';
    this.#setState('disconnected');
    // The first failure in a row is a warning; the retries after it are noise unless debugging.
    const fields = { server: this.#server, reason, retry_in_ms: delay };
    if (wasConnected) this.#logger?.warn(fields, 'xDS: lost the control plane; serving the last good config and reconnecting');
    else if (this.#failuresInRow === 0) this.#logger?.warn(fields, 'xDS: cannot reach the control plane; retrying');
    else this.#logger?.debug(fields, 'xDS: cannot reach the control plane; retrying');
    this.#failuresInRow++;
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
    this.#retryTimer.unref();
  }

  #onResponse(stream: OpenStream, response: Received): void {
    if (stream.ended || this.#stream !== stream) return;
    stream.responded = true;
    this.#markConnected(stream);
    const typeUrl = response.typeUrl;
    const type = resourceTypeOf(typeUrl);
    const nonce = response.nonce;
    if (type === undefined || !this.#watches.has(type)) {
      this.#logger?.warn({ type_url: typeUrl }, 'xDS: response for a type not subscribed; ignored');
      return;
    }
    stream.nonces.set(type, nonce);
    const previous = this.#queues.get(type) ?? Promise.resolve();
    const next = previous.then(() => this.#handle(stream, type, response));
    this.#queues.set(type, next);
  }

  async #handle(stream: OpenStream, type: ResourceType, response: Received): Promise<void> {
    if (this.#closed) return;
    const { version, nonce } = response;
    let failure: string | undefined;
    try {
      const update = this.#merge(stream.protocol, type, version, nonce, response);
      if (update) await this.#watches.get(type)!.handler(update);
      this.#accepted.set(type, update?.resources ?? this.resources(type));
      this.#versions.set(type, version);
      this.#rememberVersions(stream.protocol, type, response);
      // The subscription may have changed while the handler ran.
      this.#pruneToSubscription(type);
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
    }
    if (this.#closed) return;
    if (failure === undefined) {
      this.#acks[type]++;
      this.#lastUpdateAt = Date.now();
      this.#logger?.debug({ type, version }, 'xDS: update accepted (ACK)');
    } else {
      this.#nacks[type]++;
      this.#lastNack = { type, version, message: failure, at: Date.now() };
      this.#logger?.warn({ type, version, error: failure }, 'xDS: update rejected (NACK); keeping the last good config');
    }
    // An answer belongs to the stream the response came on; a new stream starts from what is held.
    if (stream.ended || this.#stream !== stream) return;
    if (stream.protocol === 'delta') {
      this.#send(stream, { type_url: TYPE_URL[type], response_nonce: nonce, ...(failure !== undefined && { error_detail: { code: INVALID_ARGUMENT, message: failure } }) });
      return;
    }
    this.#send(stream, {
      type_url: TYPE_URL[type],
      version_info: this.version(type),
      resource_names: this.#names(type),
      response_nonce: nonce,
      ...(failure !== undefined && { error_detail: { code: INVALID_ARGUMENT, message: failure } }),
    });
  }

  /** The update a response makes; undefined when it changes nothing (resent on reconnect, say). Throws on what cannot be decoded. */
  #merge(protocol: 'sotw' | 'delta', type: ResourceType, version: string, nonce: string, response: Received): AdsUpdate | undefined {
    const watch = this.#watches.get(type)!;
    const wanted = watch.names === WILDCARD ? undefined : new Set(watch.names);
    const received: AdsResource[] = [];
    const seen = new Set<string>();
    for (const [i, { any }] of response.resources.entries()) {
      const resource = decode(type, any, i);
      if (seen.has(resource.name)) throw new Error(`resources[${i}]: ${type} "${resource.name}" appears twice in the response`);
      seen.add(resource.name);
      // A named subscription takes only what it asked for (the server may send more to a shared stream).
      if (wanted && !wanted.has(resource.name)) continue;
      received.push(resource);
    }
    const held = this.resources(type);
    // SotW Listener and Cluster responses are the whole set; the rest, and every delta response, only what changed.
    const resources = new Map(protocol === 'sotw' && FULL_SET_TYPES.has(type) ? [] : held);
    for (const resource of received) resources.set(resource.name, resource);
    for (const name of response.removed) resources.delete(name);
    const removed = [...held.keys()].filter((name) => !resources.has(name));
    const unchanged = removed.length === 0 && resources.size === held.size
      && received.every((resource) => held.get(resource.name)?.resource.value.equals(resource.resource.value));
    if (unchanged && this.#versions.has(type)) return undefined;
    return { type, version, nonce, resources, received: received.map((resource) => resource.name), removed };
  }

  /** Delta: the server's version of each resource now held (what a new stream names in initial_resource_versions). */
  #rememberVersions(protocol: 'sotw' | 'delta', type: ResourceType, response: Received): void {
    const held = this.resources(type);
    const versions = new Map(protocol === 'delta' ? this.#resourceVersions.get(type) ?? [] : []);
    if (protocol === 'delta') {
      for (const { name, version } of response.resources) if (name !== undefined && version !== undefined && held.has(name)) versions.set(name, version);
    }
    for (const name of versions.keys()) if (!held.has(name)) versions.delete(name);
    this.#resourceVersions.set(type, versions);
  }

  #sendSubscription(type: ResourceType): void {
    const stream = this.#stream;
    if (!stream || stream.ended) return;
    if (stream.protocol === 'delta') {
      this.#sendDeltaSubscription(stream, type);
      return;
    }
    if (this.#names(type).length === 0 && this.#watches.get(type)?.names !== WILDCARD && !stream.requested.has(type)) return;
    stream.requested.add(type);
    this.#send(stream, {
      type_url: TYPE_URL[type],
      version_info: this.version(type),
      resource_names: this.#names(type),
      response_nonce: stream.nonces.get(type) ?? '',
    });
  }

  /** The first request of a type subscribes (with the versions held); later ones send what changed. */
  #sendDeltaSubscription(stream: OpenStream, type: ResourceType): void {
    const wanted = this.#watches.get(type)?.names ?? [];
    const previous = stream.subscribed.get(type);
    if (previous === undefined) {
      if (wanted !== WILDCARD && wanted.length === 0) return; // an empty first request would read as the wildcard
      stream.subscribed.set(type, wanted);
      const initial = Object.fromEntries(this.#resourceVersions.get(type) ?? []);
      this.#send(stream, {
        type_url: TYPE_URL[type],
        resource_names_subscribe: wanted === WILDCARD ? [WILDCARD] : [...wanted],
        initial_resource_versions: initial,
        response_nonce: '',
      });
      return;
    }
    if (sameSubscription(previous, wanted)) return;
    stream.subscribed.set(type, wanted);
    const before = new Set(previous === WILDCARD ? [WILDCARD] : previous);
    const after = new Set(wanted === WILDCARD ? [WILDCARD] : wanted);
    this.#send(stream, {
      type_url: TYPE_URL[type],
      resource_names_subscribe: [...after].filter((name) => !before.has(name)),
      resource_names_unsubscribe: [...before].filter((name) => !after.has(name)),
      // A change of subscription, not an answer to a response.
      response_nonce: '',
    });
  }

  #send(stream: OpenStream, request: DiscoveryRequest | DeltaDiscoveryRequest): void {
    // node only on a stream's first request, as Envoy and gRPC send it.
    if (!stream.nodeSent) {
      request.node = this.#node;
      stream.nodeSent = true;
    }
    try {
      stream.call.write(request);
    } catch (error) {
      this.#logger?.debug({ err: (error as Error).message }, 'xDS: write on a closing stream');
    }
  }

  #names(type: ResourceType): string[] {
    const names = this.#watches.get(type)?.names ?? [];
    return names === WILDCARD ? [] : [...names];
  }

  #pruneToSubscription(type: ResourceType): void {
    const versions = this.#resourceVersions.get(type);
    const names = this.#watches.get(type)?.names;
    const held = this.#accepted.get(type);
    if (!held || names === undefined || names === WILDCARD) return;
    const wanted = new Set(names);
    if ([...held.keys()].every((name) => wanted.has(name))) return;
    this.#accepted.set(type, new Map([...held].filter(([name]) => wanted.has(name))));
    if (versions) for (const name of versions.keys()) if (!wanted.has(name)) versions.delete(name);
  }

  #setState(state: AdsConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#onStateChange?.(state);
  }
}


