/**
 * The control plane's ADS server: Envoy v3 AggregatedDiscoveryService, both
 * StreamAggregatedResources (state of the world) and DeltaAggregatedResources
 * (incremental), serving a ResourceProvider's Listener, RouteConfiguration,
 * Cluster and ClusterLoadAssignment resources over mutual TLS.
 *
 * Provider changes are debounced (a burst becomes one push per stream), and
 * every stream is authorized from its client certificate and first request.
 * docs/control-plane.md ("Protocol", "Security model") describes both.
 */
import * as grpc from '@grpc/grpc-js';
import pino, { type Logger } from 'pino';
import type { z } from 'zod';
import { ANONYMOUS, identityOfCertificate, type CallerIdentity } from '../../security/identity.ts';
import { adsService } from '../protos.ts';
import type { ResourceProvider } from '../snapshot.ts';
import {
  AdsStream, type AckEvent, type AdsServerHooks, type AdsServerStats, type NackEvent, type RefusalEvent, type StreamContext,
} from './ads-stream.ts';
import { XdsAuthorizer } from './authorization.ts';
import { Debouncer } from './debounce.ts';
import { DeltaStream, type DeltaDiscoveryRequestMessage } from './delta-stream.ts';
import { SotwStream, type DiscoveryRequestMessage } from './sotw-stream.ts';
import { xdsAuthorizationSettings, xdsLimits, type XdsLimitsConfig } from './xds-auth-schema.ts';

export type { AckEvent, AdsServerStats, NackEvent, RefusalEvent } from './ads-stream.ts';

/** PEM contents for the server's own mTLS credentials. */
export interface AdsServerTls {
  /** The CA bundle client certificates must chain to. */
  readonly caPem: Buffer | string;
  readonly certPem: Buffer | string;
  readonly keyPem: Buffer | string;
}

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
  readonly limits?: z.input<typeof xdsLimits>;
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
  readonly limits?: z.input<typeof xdsLimits>;
  readonly debounceMs?: number;
  readonly maxDebounceMs?: number;
}

export async function startAdsServer(options: AdsServerOptions): Promise<AdsServer> {
  const credentials = serverCredentials(options);
  let provider = options.provider;
  let authorizer = new XdsAuthorizer(xdsAuthorizationSettings.parse(options.authorization));
  let limits: XdsLimitsConfig = xdsLimits.parse(options.limits ?? {});
  const logger = options.logger ?? pino({ level: 'silent' });
  const stats: AdsServerStats = { streamsAdmitted: 0, refusals: 0, responses: 0, acks: 0, nacks: 0, staleRequests: 0 };
  const hooks: AdsServerHooks = { onNack: options.onNack, onAck: options.onAck, onRefusal: options.onRefusal };
  const streams = new Set<AdsStream>();
  const perIdentity = new Map<string, number>();
  const insecureCaller = options.insecure ? insecureIdentity(options.insecureIdentity ?? 'insecure') : undefined;

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
    forget: (stream) => void streams.delete(stream),
  };

  const pushAll = (): void => {
    generation++;
    for (const stream of streams) {
      try {
        stream.flush();
      } catch (error) {
        logger.error({ err: error, node: stream.nodeId }, 'xDS push failed');
      }
    }
  };
  let debounce = { delayMs: options.debounceMs ?? 100, maxDelayMs: options.maxDebounceMs ?? 1_000 };
  let debouncer = new Debouncer(pushAll, debounce);
  let unsubscribe = provider.subscribe(() => debouncer.trigger());

  let closed = false;
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_concurrent_streams': limits.max_streams_per_connection,
    ...options.serverOptions,
  });
  const opened = (stream: AdsStream): void => {
    if (closed) stream.end(grpc.status.UNAVAILABLE, 'xDS server shutting down');
    else if (!stream.ended) streams.add(stream);
  };
  server.addService(adsService().service, {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequestMessage, unknown>) => opened(new SotwStream('sotw', call, context)),
    DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequestMessage, unknown>) => opened(new DeltaStream('delta', call, context)),
  });

  const address = options.address ?? '127.0.0.1';
  const target = address.includes(':') ? `[${address}]:${options.port}` : `${address}:${options.port}`;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => server.bindAsync(target, credentials, (error, bound) => (error ? reject(error) : resolve(bound))));
  } catch (error) {
    unsubscribe();
    debouncer.close();
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
    update: (changes) => {
      if (closed) return;
      // Everything is parsed before anything changes: a bad update changes nothing.
      const nextAuthorizer = changes.authorization ? new XdsAuthorizer(xdsAuthorizationSettings.parse(changes.authorization)) : undefined;
      const nextLimits = changes.limits ? xdsLimits.parse(changes.limits) : undefined;
      if (nextLimits) limits = nextLimits;
      if (changes.debounceMs !== undefined || changes.maxDebounceMs !== undefined) {
        debouncer.close();
        debounce = { delayMs: changes.debounceMs ?? debounce.delayMs, maxDelayMs: changes.maxDebounceMs ?? debounce.maxDelayMs };
        debouncer = new Debouncer(pushAll, debounce);
      }
      if (changes.provider && changes.provider !== provider) {
        unsubscribe();
        provider = changes.provider;
        unsubscribe = provider.subscribe(() => debouncer.trigger());
      }
      if (nextAuthorizer) {
        authorizer = nextAuthorizer;
        for (const stream of [...streams]) stream.reauthorize();
      }
      pushAll();
    },
    close: async (graceMs = 2_000) => {
      if (closed) return;
      closed = true;
      unsubscribe();
      debouncer.close();
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

function serverCredentials(options: AdsServerOptions): grpc.ServerCredentials {
  const given = [options.tls !== undefined, options.credentials !== undefined, options.insecure === true].filter(Boolean).length;
  if (given !== 1) throw new Error('startAdsServer needs exactly one of tls, credentials and insecure: true');
  if (options.credentials) return options.credentials;
  if (options.tls) {
    const { caPem, certPem, keyPem } = options.tls;
    return grpc.ServerCredentials.createSsl(Buffer.from(caPem), [{ cert_chain: Buffer.from(certPem), private_key: Buffer.from(keyPem) }], true);
  }
  return grpc.ServerCredentials.createInsecure();
}

/** The verified client certificate's identity; anonymous when there is none (grpc-js only reports a certificate that verified). */
function callerOf(call: grpc.ServerDuplexStream<unknown, unknown>): CallerIdentity {
  const certificate = call.getAuthContext().sslPeerCertificate;
  return certificate ? identityOfCertificate(certificate) : ANONYMOUS;
}

function insecureIdentity(name: string): CallerIdentity {
  const spiffe = name.startsWith('spiffe://');
  return {
    authenticated: true,
    spiffeId: spiffe ? name : undefined,
    uris: spiffe ? [name] : [],
    dnsNames: [],
    commonName: spiffe ? undefined : name,
    certificateSha256: undefined,
    label: name,
  };
}
