/**
 * The control plane's ADS server: Envoy v3 AggregatedDiscoveryService, both
 * StreamAggregatedResources (state of the world) and DeltaAggregatedResources
 * (incremental), serving a ResourceProvider's Listener, RouteConfiguration,
 * Cluster and ClusterLoadAssignment resources over mutual TLS.
 *
 * Provider changes are debounced (a burst becomes one push per stream), and
 * every stream is authorized from its client certificate and first request.
 * Responses are encoded from resources serialised once (response-encoder.ts)
 * and written through a fan-out that batches, yields and bounds what is
 * buffered (fan-out.ts); a stream whose client stops reading is reset after
 * `limits.stalled_stream_timeout`, and past `limits.max_streams` new streams
 * are refused with UNAVAILABLE and a retry hint, for another replica.
 * docs/control-plane.md ("Protocol", "Security model", "At fleet scale").
 */
import * as grpc from '@grpc/grpc-js';
import pino, { type Logger } from 'pino';
import type { z } from 'zod';
import type { ResourceProvider } from '../snapshot.ts';
import {
  AdsStream, type AckEvent, type AdsServerHooks, type AdsServerStats, type NackEvent, type RefusalEvent, type StreamContext,
} from './ads-stream.ts';
import { XdsAuthorizer } from './authorization.ts';
import { Debouncer } from './debounce.ts';
import { DeltaStream, type DeltaDiscoveryRequestMessage } from './delta-stream.ts';
import { FanOut, type FanOutOptions } from './fan-out.ts';
import { ResponseEncoder, type EncoderStats } from './response-encoder.ts';
import { SharedViews } from './shared-views.ts';
import { SotwStream, type DiscoveryRequestMessage } from './sotw-stream.ts';
import { byteResponseService, callerOf, insecureIdentity, serverCredentials, type AdsServerTls } from './transport.ts';
import { xdsAuthorizationSettings, xdsLimits, type XdsLimitsConfig } from './xds-auth-schema.ts';

export type { AckEvent, AdsServerStats, NackEvent, RefusalEvent } from './ads-stream.ts';
export type { AdsServerTls } from './transport.ts';
export type { EncoderStats } from './response-encoder.ts';

export interface AdsServerOptions {
  /** Default 127.0.0.1. */
  readonly address?: string;
  /** 0: any free port (read it back from AdsServer.port). */
  readonly port: number;
  /**
   * Exactly one of tls, credentials and insecure. `tls` makes credentials
   * that refuse plaintext and any client without a certificate from caPem at
   * the handshake. `credentials` are used as given (for rotation): they must
   * verify client certificates, or every stream ends UNAUTHENTICATED.
   */
  readonly tls?: AdsServerTls;
  readonly credentials?: grpc.ServerCredentials;
  /**
   * Plaintext, for in-process relays only: every stream is attributed to
   * `insecureIdentity` (default "insecure"), which the rules must list.
   */
  readonly insecure?: boolean;
  readonly insecureIdentity?: string;
  readonly provider: ResourceProvider;
  readonly authorization: z.input<typeof xdsAuthorizationSettings>;
  /** As parsed (durations in ms); what is left out takes the schema's default. */
  readonly limits?: Partial<XdsLimitsConfig>;
  /** Quiet time before provider changes are pushed. Default 100 ms. */
  readonly debounceMs?: number;
  /** Longest a change waits under constant churn. Default 1000 ms. */
  readonly maxDebounceMs?: number;
  /** A stream that sends no request in this long is ended (DEADLINE_EXCEEDED). Default 10 s. */
  readonly firstRequestTimeoutMs?: number;
  /** Sent as control_plane.identifier in every response (which replica answered). */
  readonly controlPlaneId?: string;
  readonly logger?: Logger;
  /** Passed to grpc.Server; keepalive pings every 30 s (10 s timeout) unless set here, so dead peers free their stream slots. */
  readonly serverOptions?: grpc.ServerOptions;
  readonly onNack?: (event: NackEvent) => void;
  readonly onAck?: (event: AckEvent) => void;
  readonly onRefusal?: (event: RefusalEvent) => void;
  /** Batching of pushes (defaults suit 10,000 streams: 200 streams per batch, 16 MiB written and not yet flushed). */
  readonly fanOut?: FanOutOptions;
}

export interface AdsServer {
  /** The bound port. */
  readonly port: number;
  /** Counters since start; read them, don't write them. */
  readonly stats: Readonly<AdsServerStats>;
  /** Open ADS streams (admitted or still waiting for their first request). */
  readonly streamCount: number;
  /** Admitted streams per identity (as written in the rules). */
  streamsByIdentity(): ReadonlyMap<string, number>;
  /** How often resources and response bodies were serialised (the rest of the responses shared them). */
  readonly encoding: Readonly<EncoderStats>;
  /** Bytes written to streams and not yet flushed to their connections, now and at most. */
  readonly bytesInFlight: { readonly now: number; readonly peak: number };
  /**
   * Applies a reloaded config: another provider, rules, limits or debounce.
   * Admitted streams are checked against new rules (ending those no longer
   * allowed) and every stream is then sent what changed for it. Limits apply
   * to new admissions; streams already admitted are not ended by a lower one.
   */
  update(changes: AdsServerUpdate): void;
  /** Ends every stream with UNAVAILABLE (clients reconnect, to another replica if there is one) and stops listening. */
  close(graceMs?: number): Promise<void>;
}

export interface AdsServerUpdate {
  readonly provider?: ResourceProvider;
  readonly authorization?: z.input<typeof xdsAuthorizationSettings>;
  readonly limits?: Partial<XdsLimitsConfig>;
  readonly debounceMs?: number;
  readonly maxDebounceMs?: number;
}

export async function startAdsServer(options: AdsServerOptions): Promise<AdsServer> {
  const credentials = serverCredentials(options);
  let provider = options.provider;
  let authorizer = new XdsAuthorizer(xdsAuthorizationSettings.parse(options.authorization));
  let limits: XdsLimitsConfig = { ...xdsLimits.parse({}), ...options.limits };
  const logger = options.logger ?? pino({ level: 'silent' });
  const stats: AdsServerStats = { streamsAdmitted: 0, refusals: 0, responses: 0, acks: 0, nacks: 0, staleRequests: 0, shed: 0, stalled: 0 };
  const hooks: AdsServerHooks = { onNack: options.onNack, onAck: options.onAck, onRefusal: options.onRefusal };
  const streams = new Set<AdsStream>();
  const perIdentity = new Map<string, number>();
  const insecureCaller = options.insecure ? insecureIdentity(options.insecureIdentity ?? 'insecure') : undefined;
  const encoder = new ResponseEncoder(options.controlPlaneId);
  const fanOut = new FanOut<AdsStream>(options.fanOut);
  const views = new SharedViews();

  /** Publications of provider changes (see StreamContext.generation). */
  let generation = 0;
  const context: StreamContext = {
    get provider() {
      return provider;
    },
    get authorizer() {
      return authorizer;
    },
    get limits() {
      return limits;
    },
    logger,
    stats,
    hooks,
    controlPlaneId: options.controlPlaneId,
    firstRequestTimeoutMs: options.firstRequestTimeoutMs ?? 10_000,
    generation: () => generation,
    identify: (call) => insecureCaller ?? callerOf(call),
    acquire: (identity, force = false) => {
      const count = perIdentity.get(identity) ?? 0;
      if (count >= limits.max_streams_per_identity && !force) return false;
      perIdentity.set(identity, count + 1);
      return true;
    },
    release: (identity) => {
      const count = (perIdentity.get(identity) ?? 1) - 1;
      if (count <= 0) perIdentity.delete(identity);
      else perIdentity.set(identity, count);
    },
    forget: (stream) => {
      streams.delete(stream);
      fanOut.remove(stream);
    },
    encoder,
    schedule: (stream) => fanOut.schedule(stream),
    completed: (bytes) => fanOut.completed(bytes),
    resourcesFor: (capabilities) => views.resourcesFor(provider, generation, capabilities),
    routeFilter: (rule, listeners) => views.routeFilter(rule, listeners),
  };

  /** Every stream is looked at in batches (most find nothing new for them). */
  const pushAll = (): void => {
    generation++;
    for (const stream of streams) fanOut.schedule(stream);
  };
  let debounce = { delayMs: options.debounceMs ?? 100, maxDelayMs: options.maxDebounceMs ?? 1_000 };
  let debouncer = new Debouncer(pushAll, debounce);
  const onProviderChange = (): void => {
    views.providerChanged();
    debouncer.trigger();
  };
  let unsubscribe = provider.subscribe(onProviderChange);

  // A client that stopped reading holds one response; past the timeout its stream is reset.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const stream of streams) {
      const stalledMs = stream.stalledFor(now);
      if (stalledMs < limits.stalled_stream_timeout) continue;
      stats.stalled++;
      logger.warn({ protocol: stream.protocol, identity: stream.identity, node: stream.nodeId, stalledMs: Math.round(stalledMs) }, 'xDS stream reset: the client has not read a response for longer than stalled_stream_timeout');
      stream.end(grpc.status.UNAVAILABLE, `the client did not read a response within ${limits.stalled_stream_timeout} ms`);
      stream.reset();
    }
  }, SWEEP_INTERVAL_MS);
  sweep.unref();

  let closed = false;
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_concurrent_streams': limits.max_streams_per_connection,
    ...options.serverOptions,
  });
  const accept = (call: grpc.ServerDuplexStream<any, unknown>, protocol: 'sotw' | 'delta', make: () => AdsStream): void => {
    if (closed) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'xDS server shutting down' });
      return;
    }
    // Load shedding, before the stream costs anything: the client goes to another replica.
    if (streams.size >= limits.max_streams) {
      shed(call, protocol);
      return;
    }
    const stream = make();
    if (!stream.ended) streams.add(stream);
  };
  const shed = (call: grpc.ServerDuplexStream<unknown, unknown>, protocol: 'sotw' | 'delta'): void => {
    stats.shed++;
    const retryMs = Math.round(limits.shed_retry_after * (0.5 + Math.random()));
    const metadata = new grpc.Metadata();
    // gRPC's retry pushback: clients that know it wait this long; the agent and the proxy's client do.
    metadata.set('grpc-retry-pushback-ms', String(retryMs));
    const details = `this xDS server holds its limit of ${limits.max_streams} streams; retry in ${retryMs} ms, preferably on another replica`;
    call.emit('error', { code: grpc.status.UNAVAILABLE, details, metadata });
    const identity = (insecureCaller ?? callerOf(call)).label;
    if (stats.shed === 1 || stats.shed % 1000 === 0) logger.warn({ identity, limit: limits.max_streams, shed: stats.shed }, 'xDS stream refused: max_streams reached (logged once per 1000)');
    try {
      hooks.onRefusal?.({ protocol, identity, nodeId: '', nodeCluster: '', code: grpc.status.UNAVAILABLE, reason: details });
    } catch (error) {
      logger.error({ err: error }, 'xDS server hook failed');
    }
  };
  server.addService(byteResponseService(), {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequestMessage, unknown>) => accept(call, 'sotw', () => new SotwStream('sotw', call, context)),
    DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequestMessage, unknown>) => accept(call, 'delta', () => new DeltaStream('delta', call, context)),
  });

  const address = options.address ?? '127.0.0.1';
  const target = address.includes(':') ? `[${address}]:${options.port}` : `${address}:${options.port}`;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => server.bindAsync(target, credentials, (error, bound) => (error ? reject(error) : resolve(bound))));
  } catch (error) {
    unsubscribe();
    debouncer.close();
    clearInterval(sweep);
    fanOut.close();
    server.forceShutdown();
    throw error;
  }
  logger.info({ address, port, mode: options.insecure ? 'insecure' : 'mtls' }, 'xDS server listening');

  return {
    port,
    stats,
    get streamCount() {
      return streams.size;
    },
    streamsByIdentity: () => new Map(perIdentity),
    encoding: encoder.stats,
    get bytesInFlight() {
      return { now: fanOut.bytesInFlight, peak: fanOut.peakBytesInFlight };
    },
    update: (changes) => {
      if (closed) return;
      // Everything is parsed before anything changes: a bad update changes nothing.
      const nextAuthorizer = changes.authorization ? new XdsAuthorizer(xdsAuthorizationSettings.parse(changes.authorization)) : undefined;
      const nextLimits = changes.limits ? { ...xdsLimits.parse({}), ...changes.limits } : undefined;
      if (nextLimits) limits = nextLimits;
      if (changes.debounceMs !== undefined || changes.maxDebounceMs !== undefined) {
        debouncer.close();
        debounce = { delayMs: changes.debounceMs ?? debounce.delayMs, maxDelayMs: changes.maxDebounceMs ?? debounce.maxDelayMs };
        debouncer = new Debouncer(pushAll, debounce);
      }
      if (changes.provider && changes.provider !== provider) {
        unsubscribe();
        provider = changes.provider;
        unsubscribe = provider.subscribe(onProviderChange);
        views.providerChanged();
      }
      if (nextAuthorizer) {
        authorizer = nextAuthorizer;
        views.clearRules();
        for (const stream of [...streams]) stream.reauthorize();
      }
      pushAll();
    },
    close: async (graceMs = 2_000) => {
      if (closed) return;
      closed = true;
      unsubscribe();
      debouncer.close();
      clearInterval(sweep);
      fanOut.close();
      for (const stream of [...streams]) stream.end(grpc.status.UNAVAILABLE, 'xDS server shutting down');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** How often streams are checked for a stalled write: the timeout is honoured within this. */
const SWEEP_INTERVAL_MS = 1_000;
