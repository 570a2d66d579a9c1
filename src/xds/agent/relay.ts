/**
 * One local ADS stream and its stream to the control plane. Messages pass
 * both ways as they are; the relay reads them only to remember the client's
 * subscription (to replay it on a new upstream stream), to fill the cache,
 * and to answer from the cache while the control plane cannot.
 *
 * The local stream never fails because of the control plane: when the
 * upstream stream ends (other than by an explicit refusal, which is passed
 * on), the relay serves what the cache holds for the client's node and
 * opens a new upstream stream after a jittered exponential backoff, first
 * sending the client's current subscription with the versions it holds.
 * While that stream has answered nothing, requests that acknowledge
 * responses it did not send are not forwarded (a server would count them as
 * stale, or mistake them for acknowledgements of its own nonces); changes of
 * subscription are, without the foreign nonce.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { clip, clipOptional } from '../clip.ts';
import { retryPushbackMs } from '../pushback.ts';
import { isFullStateType, nodeKey, type Interest, type ResponseCache } from './cache.ts';
import {
  readDeltaRequest, readDeltaResponse, readSotwRequest, readSotwResponse, resourceNameOf,
  writeDeltaRequest, writeDeltaResponse, writeSotwRequest, writeSotwResponse, type NodeInfo,
} from './wire.ts';

export type AgentLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
export type RelayProtocol = 'sotw' | 'delta';
export type Duplex = grpc.ServerDuplexStream<Buffer, Buffer>;
export type UpstreamCall = grpc.ClientDuplexStream<Buffer, Buffer>;

/** What the agent gives every relay. */
export interface RelayContext {
  readonly cache: ResponseCache;
  readonly logger: AgentLogger;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  /** How long a new upstream stream may stay silent before the cache answers anyway. */
  readonly cacheFallbackMs: number;
  openUpstream(protocol: RelayProtocol): UpstreamCall;
  /** Whether the control plane answered lately: false after a stream failed, until one answers. */
  readonly reachable: boolean | undefined;
  upstreamAnswered(): void;
  upstreamFailed(status: grpc.StatusObject): void;
  servedFromCache(): void;
  /** A nonce no control plane would send: marks the agent's own (cached) responses. */
  nextNonce(): string;
  closed(relay: Relay): void;
}

/** Statuses by which a control plane refuses a client: passed on to the local client rather than retried. */
const REFUSALS: ReadonlySet<number> = new Set([grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED, grpc.status.INVALID_ARGUMENT]);
/** Nonces of the current upstream stream remembered per type (a client may ACK one a little behind). */
const NONCES_KEPT = 8;

export abstract class Relay {
  protected readonly context: RelayContext;
  protected readonly local: Duplex;
  readonly protocol: RelayProtocol;
  protected node: NodeInfo | undefined;
  /** The cache key of the node; undefined until the client names its node. */
  protected cacheKey: string | undefined;
  #upstream: UpstreamCall | undefined;
  /** The current upstream stream has delivered a message. */
  #live = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #fallbackTimer: NodeJS.Timeout | undefined;
  #fallback = false;
  #closed = false;

  constructor(context: RelayContext, local: Duplex, protocol: RelayProtocol) {
    this.context = context;
    this.local = local;
    this.protocol = protocol;
    local.on('data', (message: Buffer) => this.#onLocalMessage(message));
    local.on('end', () => {
      // The client half-closed: so does the relay.
      if (!this.#closed) local.end();
      this.close();
    });
    local.on('cancelled', () => this.close());
    local.on('error', () => this.close());
    local.on('close', () => this.close());
  }

  /** The client's node.id, clipped for logs (a client may claim megabytes). */
  protected get nodeLabel(): string | undefined {
    return clipOptional(this.node?.id);
  }

  get upstreamOpen(): boolean {
    return this.#upstream !== undefined;
  }

  /** Answer from the cache: the upstream stream is down, or has said nothing while the control plane seems down or for too long. */
  protected get servingFromCache(): boolean {
    return !this.#live && (this.#upstream === undefined || this.context.reachable === false || this.#fallback);
  }

  /**
   * The control plane answered another relay: one waiting out a backoff
   * retries within `withinMs` (a random moment, so that many relays do not
   * return at once) rather than at the end of its backoff.
   */
  retrySoon(withinMs: number): void {
    if (!this.#retryTimer || this.#closed) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (!this.#closed) this.#open(undefined);
    }, Math.round(Math.random() * withinMs));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#fallbackTimer);
    const upstream = this.#upstream;
    this.#upstream = undefined;
    upstream?.cancel();
    this.context.closed(this);
  }

  protected abstract onRequest(message: Buffer): void;
  protected abstract onResponse(message: Buffer): void;
  /** Writes what the new upstream stream must start with: `first` as it came, or the client's whole subscription. */
  protected abstract replay(first: Buffer | undefined): void;
  /** Answers every subscribed type from the cache, where it has something the client lacks. */
  protected abstract serveAllFromCache(): void;

  protected identify(node: NodeInfo | undefined): void {
    if (this.node || !node) return;
    this.node = node;
    if (node.id !== '') this.cacheKey = nodeKey(node.id, node.userAgentName);
  }

  protected sendUpstream(message: Buffer): void {
    this.#upstream?.write(message);
  }

  protected sendLocal(message: Buffer): void {
    if (!this.#closed) this.local.write(message);
  }

  /** Opens the upstream stream unless it is open or waiting out a backoff; `first` is the client's first message. */
  protected ensureUpstream(first?: Buffer): void {
    if (this.#upstream || this.#retryTimer || this.#closed) return;
    this.#open(first);
  }

  #onLocalMessage(message: Buffer): void {
    if (this.#closed) return;
    try {
      this.onRequest(message);
    } catch (error) {
      this.context.logger.warn({ err: error, protocol: this.protocol, node: this.nodeLabel }, 'malformed xDS request from a local client; stream ended');
      this.local.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `malformed xDS request: ${(error as Error).message}` });
      this.close();
    }
  }

  #open(first: Buffer | undefined): void {
    const call = this.context.openUpstream(this.protocol);
    this.#upstream = call;
    this.#live = false;
    call.on('data', (message: Buffer) => {
      if (call !== this.#upstream) return;
      if (!this.#live) {
        this.#live = true;
        this.#attempt = 0;
        this.#fallback = false;
        clearTimeout(this.#fallbackTimer);
        this.context.upstreamAnswered();
      }
      try {
        this.onResponse(message);
      } catch (error) {
        // Not ours to judge: the client gets it as it came and may NACK it; only the cache misses it.
        this.context.logger.warn({ err: error, protocol: this.protocol, node: this.nodeLabel }, 'could not read a control-plane response; relayed uncached');
        this.sendLocal(message);
      }
    });
    call.on('error', () => {}); // the status says it all
    call.on('status', (status: grpc.StatusObject) => {
      if (call !== this.#upstream) return;
      this.#upstream = undefined;
      this.#live = false;
      this.#onUpstreamEnd(status);
    });
    clearTimeout(this.#fallbackTimer);
    this.#fallbackTimer = setTimeout(() => {
      if (this.#live || this.#closed) return;
      this.#fallback = true;
      this.serveAllFromCache();
    }, this.context.cacheFallbackMs);
    this.replay(first);
  }

  #onUpstreamEnd(status: grpc.StatusObject): void {
    if (this.#closed) return;
    clearTimeout(this.#fallbackTimer);
    const { logger } = this.context;
    if (REFUSALS.has(status.code)) {
      logger.warn({ protocol: this.protocol, node: this.nodeLabel, code: grpc.status[status.code], details: clip(status.details) }, 'the control plane refused a local client; passed on');
      this.local.emit('error', { code: status.code, details: status.details, metadata: status.metadata });
      this.close();
      return;
    }
    this.context.upstreamFailed(status);
    // Refused for load (a replica at its max_streams): the control plane said when to come back, already
    // spread; waiting that long is enough, and the backoff does not grow for it.
    let delay = retryPushbackMs(status.metadata);
    if (delay === 0) {
      const base = Math.min(this.context.backoff.maxMs, this.context.backoff.initialMs * 2 ** this.#attempt);
      this.#attempt = Math.min(this.#attempt + 1, 30);
      // Jitter: 50–100 % of the step, so relays that lost the control plane together do not return together.
      delay = Math.round(base * (0.5 + Math.random() * 0.5));
    }
    logger.debug({ protocol: this.protocol, node: this.nodeLabel, code: grpc.status[status.code], details: clip(status.details), retryInMs: delay }, 'upstream xDS stream ended; retrying');
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (!this.#closed) this.#open(undefined);
    }, delay);
    this.serveAllFromCache();
  }
}

const namesKey = (names: Iterable<string>) => [...names].sort().join('\n');

interface SotwTypeState {
  /** resource_names of the client's latest request. */
  names: readonly string[];
  interest: Interest;
  /** Once a request names resources, an empty list no longer means "everything". */
  named: boolean;
  /** version_info of the client's latest request: the version it holds. */
  version: string;
  /** The last response the client got (relayed or from the cache). */
  delivered: { version: string; names: ReadonlySet<string> } | undefined;
  /** Nonces the current upstream stream sent for this type, newest last. */
  nonces: string[];
  /** The names last sent upstream on the current stream. */
  forwarded: string | undefined;
}

/** StreamAggregatedResources. */
export class SotwRelay extends Relay {
  readonly #types = new Map<string, SotwTypeState>();

  constructor(context: RelayContext, local: Duplex) {
    super(context, local, 'sotw');
  }

  protected onRequest(message: Buffer): void {
    const request = readSotwRequest(message);
    const first = this.node === undefined && this.#types.size === 0;
    this.identify(request.node);
    let state = this.#types.get(request.typeUrl);
    if (!state) {
      state = { names: [], interest: { wildcard: true, names: new Set() }, named: false, version: '', delivered: undefined, nonces: [], forwarded: undefined };
      this.#types.set(request.typeUrl, state);
    }
    state.names = request.resourceNames;
    state.version = request.versionInfo;
    const names = new Set(request.resourceNames);
    if (names.size > 0 && !(names.size === 1 && names.has('*'))) state.named = true;
    state.interest = { wildcard: names.delete('*') || (names.size === 0 && !state.named), names };

    if (this.upstreamOpen) this.#forward(request.typeUrl, request.responseNonce, message, state);
    else this.ensureUpstream(first ? message : undefined);
    if (this.servingFromCache) this.#serveFromCache(request.typeUrl, state);
  }

  #forward(typeUrl: string, nonce: string, message: Buffer, state: SotwTypeState): void {
    const key = namesKey(state.names);
    if (nonce === '' || state.nonces.includes(nonce)) {
      this.sendUpstream(message);
    } else if (key !== state.forwarded) {
      // Answers a response this upstream stream never sent, but changes the subscription: pass the change on.
      this.sendUpstream(writeSotwRequest({ versionInfo: state.version, resourceNames: state.names, typeUrl, responseNonce: '' }));
    } else {
      return;
    }
    state.forwarded = key;
  }

  protected replay(first: Buffer | undefined): void {
    if (first) {
      const [state] = this.#types.values();
      if (state) state.forwarded = namesKey(state.names);
      this.sendUpstream(first);
      return;
    }
    let node = this.node?.raw;
    for (const [typeUrl, state] of this.#types) {
      state.nonces = [];
      state.forwarded = namesKey(state.names);
      this.sendUpstream(writeSotwRequest({ versionInfo: state.version, node, resourceNames: state.names, typeUrl, responseNonce: '' }));
      node = undefined;
    }
  }

  protected onResponse(message: Buffer): void {
    const response = readSotwResponse(message);
    const state = this.#types.get(response.typeUrl);
    const resources = new Map<string, Buffer>();
    for (const any of response.resources) resources.set(resourceNameOf(any), any);
    if (state) {
      state.nonces.push(response.nonce);
      if (state.nonces.length > NONCES_KEPT) state.nonces.shift();
      const names = new Set(resources.keys());
      // RouteConfiguration and ClusterLoadAssignment responses may carry only what changed: the client still holds the rest.
      if (!isFullStateType(response.typeUrl) && state.delivered) for (const name of state.delivered.names) if (state.interest.names.has(name)) names.add(name);
      state.delivered = { version: response.versionInfo, names };
    }
    if (this.cacheKey) {
      this.context.cache.storeSotw(this.cacheKey, response.typeUrl, response.versionInfo, resources, state?.interest ?? { wildcard: true, names: new Set() });
    }
    this.sendLocal(message);
  }

  protected serveAllFromCache(): void {
    for (const [typeUrl, state] of this.#types) this.#serveFromCache(typeUrl, state);
  }

  #serveFromCache(typeUrl: string, state: SotwTypeState): void {
    if (!this.cacheKey) return;
    const cached = this.context.cache.select(this.cacheKey, typeUrl, state.interest);
    if (!cached || cached.resources.size === 0) return;
    const delivered = state.delivered;
    if (delivered && delivered.version === cached.version && [...cached.resources.keys()].every((name) => delivered.names.has(name))) return;
    this.sendLocal(writeSotwResponse({
      versionInfo: cached.version,
      resources: [...cached.resources.values()].map((resource) => resource.any),
      typeUrl,
      nonce: this.context.nextNonce(),
    }));
    state.delivered = { version: cached.version, names: new Set(cached.resources.keys()) };
    this.context.servedFromCache();
  }
}

interface DeltaTypeState {
  wildcard: boolean;
  readonly explicit: Set<string>;
  /** Resource versions the client holds: initial_resource_versions, then what it ACKed. */
  readonly known: Map<string, string>;
  /** Resource versions sent to the client (relayed or from the cache), ACKed or not. */
  readonly sent: Map<string, string>;
  nonces: string[];
}

/** Changes a response makes, applied to `known` when the client ACKs it. */
interface PendingDelta {
  readonly typeUrl: string;
  readonly updates: ReadonlyMap<string, string | undefined>;
}

const PENDING_KEPT = 64;

/** DeltaAggregatedResources. */
export class DeltaRelay extends Relay {
  readonly #types = new Map<string, DeltaTypeState>();
  readonly #pending = new Map<string, PendingDelta>();

  constructor(context: RelayContext, local: Duplex) {
    super(context, local, 'delta');
  }

  protected onRequest(message: Buffer): void {
    const request = readDeltaRequest(message);
    const first = this.node === undefined && this.#types.size === 0;
    this.identify(request.node);
    let state = this.#types.get(request.typeUrl);
    if (!state) {
      // The first request of a type subscribing to nothing is a wildcard subscription.
      state = { wildcard: request.subscribe.length === 0, explicit: new Set(), known: new Map(request.initialVersions), sent: new Map(request.initialVersions), nonces: [] };
      this.#types.set(request.typeUrl, state);
    }
    for (const name of request.subscribe) name === '*' ? (state.wildcard = true) : state.explicit.add(name);
    for (const name of request.unsubscribe) name === '*' ? (state.wildcard = false) : state.explicit.delete(name);
    const pending = request.responseNonce === '' ? undefined : this.#pending.get(request.responseNonce);
    if (pending) {
      this.#pending.delete(request.responseNonce);
      const acked = this.#types.get(pending.typeUrl);
      if (acked && !request.nack) for (const [name, version] of pending.updates) version === undefined ? acked.known.delete(name) : acked.known.set(name, version);
    }

    if (this.upstreamOpen) {
      if (request.responseNonce === '' || state.nonces.includes(request.responseNonce)) {
        this.sendUpstream(message);
      } else if (request.subscribe.length > 0 || request.unsubscribe.length > 0) {
        this.sendUpstream(writeDeltaRequest({ typeUrl: request.typeUrl, subscribe: request.subscribe, unsubscribe: request.unsubscribe, responseNonce: '' }));
      }
    } else {
      this.ensureUpstream(first ? message : undefined);
    }
    if (this.servingFromCache) this.#serveFromCache(request.typeUrl, state);
  }

  protected replay(first: Buffer | undefined): void {
    if (first) {
      this.sendUpstream(first);
      return;
    }
    let node = this.node?.raw;
    for (const [typeUrl, state] of this.#types) {
      state.nonces = [];
      if (!state.wildcard && state.explicit.size === 0) continue; // subscribes to nothing (an empty first request would mean everything)
      const subscribe = state.wildcard ? (state.explicit.size > 0 ? ['*', ...state.explicit] : []) : [...state.explicit];
      this.sendUpstream(writeDeltaRequest({ node, typeUrl, subscribe, initialVersions: state.known, responseNonce: '' }));
      node = undefined;
    }
  }

  protected onResponse(message: Buffer): void {
    const response = readDeltaResponse(message);
    const state = this.#types.get(response.typeUrl);
    const updates = new Map<string, string | undefined>();
    for (const resource of response.resources) if (resource.any) updates.set(resource.name, resource.version);
    for (const name of response.removed) updates.set(name, undefined);
    if (state) {
      state.nonces.push(response.nonce);
      if (state.nonces.length > NONCES_KEPT) state.nonces.shift();
      for (const [name, version] of updates) version === undefined ? state.sent.delete(name) : state.sent.set(name, version);
    }
    this.#remember(response.nonce, response.typeUrl, updates);
    if (this.cacheKey) {
      const resources = response.resources.filter((r): r is typeof r & { any: Buffer } => r.any !== undefined);
      this.context.cache.storeDelta(this.cacheKey, response.typeUrl, response.systemVersionInfo, resources, response.removed);
    }
    this.sendLocal(message);
  }

  protected serveAllFromCache(): void {
    for (const [typeUrl, state] of this.#types) this.#serveFromCache(typeUrl, state);
  }

  #serveFromCache(typeUrl: string, state: DeltaTypeState): void {
    if (!this.cacheKey) return;
    const cached = this.context.cache.select(this.cacheKey, typeUrl, { wildcard: state.wildcard, names: state.explicit });
    if (!cached) return;
    const resources = [...cached.resources].filter(([name, resource]) => state.sent.get(name) !== resource.version).map(([name, resource]) => ({ name, ...resource }));
    if (resources.length === 0) return;
    const nonce = this.context.nextNonce();
    this.sendLocal(writeDeltaResponse({ systemVersionInfo: cached.version, resources, typeUrl, nonce }));
    const updates = new Map(resources.map((r) => [r.name, r.version] as const));
    for (const [name, version] of updates) state.sent.set(name, version);
    this.#remember(nonce, typeUrl, updates);
    this.context.servedFromCache();
  }

  #remember(nonce: string, typeUrl: string, updates: ReadonlyMap<string, string | undefined>): void {
    this.#pending.set(nonce, { typeUrl, updates });
    if (this.#pending.size > PENDING_KEPT) this.#pending.delete(this.#pending.keys().next().value!);
  }
}
