/**
 * What every ADS stream does whatever its protocol variant: admits it on its
 * first request (certificate identity → rule → node claim → stream limit),
 * refuses a node that changes mid-stream, reports ACKs and NACKs, and
 * pushes each type's pending response in make-before-break order.
 * sotw-stream.ts and delta-stream.ts add the wire formats.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { CallerIdentity } from '../../security/identity.ts';
import { clip, clipOptional } from '../clip.ts';
import { resourceTypeOf, TYPE_URL, type ResourceType } from '../protos.ts';
import { capabilitiesOf, type ClientCapabilities } from '../resources.ts';
import type { ResourceProvider, XdsResource } from '../snapshot.ts';
import type { NodeClaim, XdsAuthorizer, XdsIdentityRule } from './authorization.ts';
import type { EncodedResponse, ResponseEncoder } from './response-encoder.ts';
import { rawStreamOf, resetStream, type RawStream } from './transport.ts';
import { PUSH_ORDER, SubscriptionLimitError, type TypeView } from './subscriptions.ts';
import type { XdsLimitsConfig } from './xds-auth-schema.ts';

export type AdsProtocol = 'sotw' | 'delta';

/** The node as proto-loader decodes it (snake_case; unset fields missing). */
export interface NodeMessage {
  readonly id?: string;
  readonly cluster?: string;
  readonly user_agent_name?: string;
}

export interface StatusMessage {
  readonly code?: number;
  readonly message?: string;
}

/** The fields every ADS request shares. */
export interface AdsRequestMessage {
  readonly node?: NodeMessage | null;
  readonly type_url?: string;
  readonly response_nonce?: string;
  readonly error_detail?: StatusMessage | null;
}

export interface NackEvent {
  readonly protocol: AdsProtocol;
  readonly identity: string;
  readonly nodeId: string;
  readonly type: ResourceType;
  readonly typeUrl: string;
  /** The version the client rejected (SotW version_info; delta system_version_info). */
  readonly version: string;
  /** SotW: the version the client keeps (its last ACK); delta: ''. */
  readonly keptVersion: string;
  readonly message: string;
  /** Names in the rejected response. */
  readonly resourceNames: readonly string[];
}

export interface AckEvent {
  readonly protocol: AdsProtocol;
  readonly identity: string;
  readonly nodeId: string;
  readonly type: ResourceType;
  readonly version: string;
}

export interface RefusalEvent {
  readonly protocol: AdsProtocol;
  /** The certificate's identity label (`spiffe://…`, `dns:…`, `cn:…`, `anonymous`). */
  readonly identity: string;
  /** The node.id claimed, '' when none was seen. */
  readonly nodeId: string;
  readonly nodeCluster: string;
  readonly code: grpc.status;
  readonly reason: string;
}

export interface AdsServerStats {
  /** Streams admitted (their first request passed every check). */
  streamsAdmitted: number;
  /** Streams ended by a refusal (PERMISSION_DENIED, UNAUTHENTICATED, RESOURCE_EXHAUSTED, or no first request). */
  refusals: number;
  responses: number;
  acks: number;
  nacks: number;
  /** Requests whose response_nonce was not the latest sent while a response was outstanding. */
  staleRequests: number;
  /** Streams refused for limits.max_streams (UNAVAILABLE with a retry hint). */
  shed: number;
  /** Streams reset because their client read nothing for limits.stalled_stream_timeout. */
  stalled: number;
}

export interface AdsServerHooks {
  onNack?(event: NackEvent): void;
  onAck?(event: AckEvent): void;
  onRefusal?(event: RefusalEvent): void;
}

/** What the server hands every stream. */
export interface StreamContext {
  readonly provider: ResourceProvider;
  readonly authorizer: XdsAuthorizer;
  readonly limits: XdsLimitsConfig;
  readonly logger: Logger;
  readonly stats: AdsServerStats;
  readonly hooks: AdsServerHooks;
  readonly controlPlaneId: string | undefined;
  readonly firstRequestTimeoutMs: number;
  /**
   * Bumped each time debounced provider changes are published. A stream reads
   * the provider once per generation (all four types together), so answering
   * a request never pushes a change still inside its debounce window.
   */
  generation(): number;
  /** The caller: from the verified client certificate, or the configured identity in insecure mode. */
  identify(call: grpc.ServerDuplexStream<unknown, unknown>): CallerIdentity;
  /** Takes a stream slot for `identity`; false at the limit (unless `force`: a reload moving an admitted stream). */
  acquire(identity: string, force?: boolean): boolean;
  release(identity: string): void;
  /** The stream has ended. */
  forget(stream: AdsStream): void;
  /** Encodes responses from resources serialised once for every stream. */
  readonly encoder: ResponseEncoder;
  /** Has the stream flushed in a coming batch (it may have something to send). */
  schedule(stream: AdsStream): void;
  /** A write of `bytes` completed, or its stream ended with it outstanding. */
  completed(bytes: number): void;
  /** The provider's resources of this generation for a client kind: the same maps for every stream of that kind. */
  resourcesFor(capabilities: ClientCapabilities): ReadonlyMap<ResourceType, ReadonlyMap<string, XdsResource>>;
  /** Which RouteConfigurations `rule` may receive given `listeners`: computed once per rule and listener set. */
  routeFilter(rule: XdsIdentityRule, listeners: ReadonlyMap<string, XdsResource>): (name: string) => boolean;
}

/** The part of a subscription the stream drives. */
export interface Subscription<Plan extends { readonly requested: boolean }> {
  readonly awaiting: boolean;
  plan(view: TypeView): Plan | undefined;
  sent(plan: Plan, nonce: string): void;
  /** Forgets what the client last rejected, so that it is offered again; true if there was something. */
  forgetRejection(): boolean;
  /** Counts changes of subscription (names, wildcard): a request that changed it may need an answer. */
  readonly subscriptionChanges: number;
}

export type Answer =
  | { readonly kind: 'ack'; readonly version: string }
  | { readonly kind: 'nack'; readonly version: string; readonly keptVersion?: string; readonly message: string; readonly resourceNames: readonly string[] }
  | { readonly kind: 'stale' }
  | { readonly kind: 'request' };

/** The provider's resources as this stream read them in one generation. */
interface Snapshot {
  readonly generation: number;
  readonly maps: ReadonlyMap<ResourceType, ReadonlyMap<string, XdsResource>>;
}

/** A NACK's message is the client's explanation: longer than the usual clip, still bounded. */
const MAX_NACK_MESSAGE_CHARS = 1_024;

export abstract class AdsStream<Request extends AdsRequestMessage = AdsRequestMessage, Plan extends { readonly requested: boolean } = { readonly requested: boolean }> {
  readonly protocol: AdsProtocol;
  protected readonly call: grpc.ServerDuplexStream<Request, unknown>;
  protected readonly context: StreamContext;
  protected readonly subscriptions = new Map<ResourceType, Subscription<Plan>>();
  readonly caller: CallerIdentity;
  #rule: XdsIdentityRule | undefined;
  #node: NodeClaim | undefined;
  #capabilities: ClientCapabilities = capabilitiesOf(undefined);
  /** The nonce of the last response sent, per type. */
  readonly #lastNonces = new Map<ResourceType, string>();
  #ended = false;
  #snapshot: Snapshot | undefined;
  #firstRequestTimer: NodeJS.Timeout | undefined;
  /** Bytes of the response written and not yet flushed (0: none outstanding). */
  #outstanding = 0;
  /** When the outstanding write started (performance.now()). */
  #writingSince = 0;
  /** The HTTP/2 stream written to directly; null when grpc-js must write (interceptors), undefined before the first write. */
  #raw: RawStream | null | undefined;
  #headersSent = false;
  /** The last flush found a response due that waits for the ACK of an earlier one. */
  #waitingOnAck = false;

  constructor(protocol: AdsProtocol, call: grpc.ServerDuplexStream<Request, unknown>, context: StreamContext) {
    this.protocol = protocol;
    this.call = call;
    this.context = context;
    this.caller = context.identify(call as grpc.ServerDuplexStream<unknown, unknown>);
    call.on('data', (message: Request) => this.#onRequest(message));
    call.on('end', () => this.end(grpc.status.OK, ''));
    call.on('cancelled', () => this.#cleanup());
    call.on('close', () => this.#cleanup());
    this.#firstRequestTimer = setTimeout(() => {
      this.refuse(grpc.status.DEADLINE_EXCEEDED, `no DiscoveryRequest within ${context.firstRequestTimeoutMs} ms`);
    }, context.firstRequestTimeoutMs);
    this.#firstRequestTimer.unref();
  }

  /** The admitted identity (as written in the rules), once the first request passed. */
  get identity(): string | undefined {
    return this.#rule?.identity;
  }

  /** The claimed node.id, clipped for logs and events (clip.ts); undefined before the first request. */
  get nodeId(): string | undefined {
    return this.#node ? clip(this.#node.id) : undefined;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Applies one request of `type` to its subscription (creating it), returning what it answered. */
  protected abstract receive(type: ResourceType, request: Request): Answer;

  /** One response, encoded (its bytes may be shared with other streams); never with the nonce `previousNonce`. */
  protected abstract encode(type: ResourceType, plan: Plan, previousNonce: string): EncodedResponse;

  /** A response is written and not yet flushed to the connection. */
  get writing(): boolean {
    return this.#outstanding > 0;
  }

  /** How long the outstanding write has waited for the client to read, in ms (0: none outstanding). */
  stalledFor(now: number): number {
    return this.#outstanding > 0 ? now - this.#writingSince : 0;
  }

  #onRequest(message: Request): void {
    if (this.#ended) return;
    try {
      if (!this.#node) {
        if (!this.#admit(message.node ?? undefined)) return;
      } else if (!this.#sameNode(message.node ?? undefined)) {
        return;
      }
      const typeUrl = message.type_url ?? '';
      const type = resourceTypeOf(typeUrl);
      if (!type) {
        this.context.logger.debug({ node: this.nodeId, typeUrl: clip(typeUrl) }, 'xDS request for a type this server does not serve; ignored');
        return;
      }
      const changesBefore = this.subscriptions.get(type)?.subscriptionChanges ?? -1;
      const answer = this.receive(type, message);
      const subscriptionChanged = this.subscriptions.get(type)!.subscriptionChanges !== changesBefore;
      const reoffered = this.#report(type, answer);
      // A plain ACK changes what can be sent only if a response waited for it (or a rejection is offered
      // again): at 10,000 streams, every push brings 10,000 ACKs that would each be looked at for nothing.
      if (answer.kind !== 'ack' || subscriptionChanged || this.#waitingOnAck || reoffered) this.context.schedule(this);
    } catch (error) {
      if (error instanceof SubscriptionLimitError) {
        this.refuse(grpc.status.RESOURCE_EXHAUSTED, `${this.#rule?.identity ?? this.caller.label}: ${error.message}`);
      } else {
        this.context.logger.error({ err: error, identity: this.identity, node: this.nodeId }, 'xDS stream failed');
        this.end(grpc.status.INTERNAL, 'internal error in the xDS server');
      }
    }
  }

  #admit(node: NodeMessage | undefined): boolean {
    clearTimeout(this.#firstRequestTimer);
    const claim: NodeClaim = { id: node?.id ?? '', cluster: node?.cluster ?? '' };
    this.#node = claim;
    if (!this.caller.authenticated) return this.refuse(grpc.status.UNAUTHENTICATED, 'xDS requires a verified client certificate');
    const rule = this.context.authorizer.ruleFor(this.caller);
    if (!rule) return this.refuse(grpc.status.PERMISSION_DENIED, `${this.caller.label} is not authorized for xDS`);
    if (claim.id === '') return this.refuse(grpc.status.PERMISSION_DENIED, `${rule.identity}: the first request must carry node.id`);
    const problem = rule.checkNode(claim);
    if (problem) return this.refuse(grpc.status.PERMISSION_DENIED, problem);
    if (!this.context.acquire(rule.identity)) {
      return this.refuse(grpc.status.RESOURCE_EXHAUSTED, `${rule.identity} already holds ${this.context.limits.max_streams_per_identity} xDS streams`);
    }
    this.#rule = rule;
    this.#capabilities = capabilitiesOf(node?.user_agent_name);
    this.context.stats.streamsAdmitted++;
    this.context.logger.info(
      { protocol: this.protocol, identity: rule.identity, node: clip(claim.id), nodeCluster: clip(claim.cluster), userAgent: clipOptional(node?.user_agent_name), peer: this.call.getPeer() },
      'xDS stream admitted',
    );
    return true;
  }

  /** Later requests may leave node out; when one carries it, it must be the same node. */
  #sameNode(node: NodeMessage | undefined): boolean {
    const claim = this.#node!;
    if (!node?.id) return true;
    if (node.id !== claim.id) return this.refuse(grpc.status.PERMISSION_DENIED, `node.id changed on the stream from "${clip(claim.id)}" to "${clip(node.id)}"`);
    if (node.cluster && node.cluster !== claim.cluster) {
      return this.refuse(grpc.status.PERMISSION_DENIED, `node.cluster changed on the stream from "${clip(claim.cluster)}" to "${clip(node.cluster)}"`);
    }
    return true;
  }

  /** Counts, logs and hands `answer` to the hooks; true when rejected content is to be offered again. */
  #report(type: ResourceType, answer: Answer): boolean {
    let reoffered = false;
    const { stats, hooks, logger } = this.context;
    const base = { protocol: this.protocol, identity: this.#rule!.identity, nodeId: this.nodeId!, type };
    if (answer.kind === 'ack') {
      stats.acks++;
      // A client may reject a type for what a later one says (a Cluster removed while the routes, not
      // yet updated, still name it): once a type later in push order is accepted, the earlier types'
      // rejected content is offered again.
      const position = PUSH_ORDER.indexOf(type);
      for (const [other, subscription] of this.subscriptions) if (PUSH_ORDER.indexOf(other) < position && subscription.forgetRejection()) reoffered = true;
      logger.debug({ ...base, version: answer.version }, 'xDS ACK');
      this.#callHook(() => hooks.onAck?.({ ...base, version: answer.version }));
    } else if (answer.kind === 'nack') {
      stats.nacks++;
      const event: NackEvent = {
        ...base, typeUrl: TYPE_URL[type], version: answer.version, keptVersion: answer.keptVersion ?? '', message: clip(answer.message, MAX_NACK_MESSAGE_CHARS), resourceNames: answer.resourceNames,
      };
      logger.warn(
        { protocol: this.protocol, identity: event.identity, node: event.nodeId, type, version: event.version, keptVersion: event.keptVersion, error: event.message, resources: event.resourceNames },
        'xDS NACK: the client rejected a response and keeps its last good version',
      );
      this.#callHook(() => hooks.onNack?.(event));
    } else if (answer.kind === 'stale') {
      stats.staleRequests++;
    }
    return reoffered;
  }

  /** A hook that throws is logged; it never breaks the stream. */
  #callHook(call: () => void): void {
    try {
      call();
    } catch (error) {
      this.context.logger.error({ err: error }, 'xDS server hook failed');
    }
  }

  /**
   * Writes the first response due, in push order (CDS, EDS, LDS, RDS; a push
   * waits behind an earlier type's unsent change), unless one is still being
   * written: at most one response per stream is outstanding, and the next is
   * planned when it has been flushed (so it reflects the latest resources).
   * Returns the bytes written (0: nothing). Called by the fan-out (fan-out.ts).
   */
  flush(): number {
    if (!this.#rule || this.#ended || this.#outstanding > 0) return 0;
    let held = false;
    this.#waitingOnAck = false;
    for (const type of PUSH_ORDER) {
      const subscription = this.subscriptions.get(type);
      if (!subscription) continue;
      const plan = subscription.plan(this.#view(type));
      if (!plan) continue;
      if (subscription.awaiting) {
        held = true;
        this.#waitingOnAck = true;
        continue;
      }
      if (held && !plan.requested) continue;
      const response = this.encode(type, plan, this.#lastNonces.get(type) ?? '');
      this.#lastNonces.set(type, response.nonce);
      subscription.sent(plan, response.nonce);
      this.context.stats.responses++;
      this.#send(response);
      return response.framed.length;
    }
    return 0;
  }

  #send(response: EncodedResponse): void {
    const bytes = response.framed.length;
    this.#outstanding = bytes;
    this.#writingSince = performance.now();
    const written = () => {
      // After the stream ended, cleanup already freed the budget.
      if (this.#outstanding !== bytes || this.#ended) return;
      this.#outstanding = 0;
      this.context.completed(bytes);
      this.context.schedule(this);
    };
    // The same framed bytes go to every stream that gets this response: written to the HTTP/2 stream
    // itself, no copy per stream (grpc-js would copy each message into a buffer of its own).
    this.#raw ??= rawStreamOf(this.call as grpc.ServerDuplexStream<unknown, unknown>) ?? null;
    if (this.#raw) {
      if (!this.#headersSent) {
        this.call.sendMetadata(new grpc.Metadata());
        this.#headersSent = true;
      }
      writeInSlices(this.#raw, response.framed, written);
    } else {
      this.call.write(response.bytes, written);
    }
  }

  #view(type: ResourceType): TypeView {
    const rule = this.#rule!;
    const generation = this.context.generation();
    if (this.#snapshot?.generation !== generation) this.#snapshot = { generation, maps: this.context.resourcesFor(this.#capabilities) };
    const { maps } = this.#snapshot;
    const resources = maps.get(type)!;
    if (type === 'route') return { resources, allowed: this.context.routeFilter(rule, maps.get('listener')!) };
    if (type === 'listener') return { resources, allowed: (name) => rule.allowsListener(name) };
    return { resources, allowed: (name) => rule.allowsCluster(name) };
  }

  /**
   * The rules changed (a config reload): an admitted stream is checked again
   * as if it were new. One its identity or node may no longer hold ends with
   * PERMISSION_DENIED; the others go on under the new rule (the next flush
   * sends what it now allows, and stops sending what it no longer does).
   */
  reauthorize(): void {
    const previous = this.#rule;
    if (!previous || this.#ended) return;
    const rule = this.context.authorizer.ruleFor(this.caller);
    if (!rule) {
      this.refuse(grpc.status.PERMISSION_DENIED, `${this.caller.label} is no longer authorized for xDS`);
      return;
    }
    const problem = rule.checkNode(this.#node!);
    if (problem) {
      this.refuse(grpc.status.PERMISSION_DENIED, problem);
      return;
    }
    if (rule.identity !== previous.identity) {
      this.context.release(previous.identity);
      this.context.acquire(rule.identity, true);
    }
    this.#rule = rule;
    this.#snapshot = undefined;
  }

  /** Logs and counts a refusal, then ends the stream with `code`. Returns false, for `return this.refuse(…)`. */
  protected refuse(code: grpc.status, reason: string): false {
    if (this.#ended) return false;
    const event: RefusalEvent = {
      protocol: this.protocol, identity: this.caller.label, nodeId: clip(this.#node?.id ?? ''), nodeCluster: clip(this.#node?.cluster ?? ''), code, reason,
    };
    this.context.stats.refusals++;
    this.context.logger.warn(
      { protocol: this.protocol, identity: event.identity, node: event.nodeId, nodeCluster: event.nodeCluster, code: grpc.status[code], reason, peer: this.call.getPeer() },
      'xDS stream refused',
    );
    this.#callHook(() => this.context.hooks.onRefusal?.(event));
    this.end(code, reason);
    return false;
  }

  /** Drops the stream at the HTTP/2 level (RST_STREAM), with whatever was queued for it: for a client that stopped reading. */
  reset(): void {
    resetStream(this.call as grpc.ServerDuplexStream<unknown, unknown>);
  }

  /** Ends the stream with a status (OK ends it cleanly). */
  end(code: grpc.status, details: string): void {
    if (this.#ended) return;
    this.#cleanup();
    if (code === grpc.status.OK) this.call.end();
    else this.call.emit('error', { code, details });
  }

  #cleanup(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#firstRequestTimer);
    if (this.#outstanding > 0) {
      this.context.completed(this.#outstanding);
      this.#outstanding = 0;
    }
    if (this.#rule) {
      this.context.release(this.#rule.identity);
      this.context.logger.debug({ protocol: this.protocol, identity: this.#rule.identity, node: this.nodeId }, 'xDS stream ended');
    }
    this.context.forget(this);
  }
}

/**
 * How much of a response is handed to the HTTP/2 stream at a time. Node's
 * HTTP/2 and TLS layers keep, per connection, buffers as large as the most
 * ever written to it at once (measured: about 2.8 MB per connection after
 * 450 KB answers, 5,000 streams over 500 connections: 1.6 GB); written a
 * slice at a time, the next once the last has gone out, they stay small.
 */
const SLICE_BYTES = 16 * 1024;

function writeInSlices(stream: RawStream, bytes: Buffer, done: () => void): void {
  let offset = 0;
  const next = (error?: Error | null): void => {
    if (error || offset >= bytes.length || stream.destroyed) {
      done();
      return;
    }
    const end = Math.min(bytes.length, offset + SLICE_BYTES);
    const slice = bytes.subarray(offset, end);
    offset = end;
    stream.write(slice, next);
  };
  next();
}
