/**
 * `switchyard agent`: a node-local xDS relay for proxyless gRPC clients.
 *
 * @grpc/grpc-js-xds reads its control plane from a bootstrap file whose
 * channel credentials can only be `insecure` or `google_default`: it cannot
 * present a client certificate. The agent can. It listens for the node's
 * clients on a Unix socket or a loopback address (plaintext, never reachable
 * from off the node), and relays each of their ADS streams, state of the
 * world or delta, over one mTLS channel to the control plane, which
 * authenticates the agent's certificate and checks every node.id it relays.
 *
 * It remembers the last answers per node and type (cache.ts), so clients
 * see no error while the control plane is down, and a client that starts
 * during an outage still gets its last good config. Messages are handled as
 * bytes (wire.ts): no proto is loaded, to keep the agent small.
 */
import * as grpc from '@grpc/grpc-js';
import { chmodSync, existsSync, statSync, unlinkSync } from 'node:fs';
import { connect, isIP } from 'node:net';
import path from 'node:path';
import { checkServerIdentity } from 'node:tls';
import { clip } from '../clip.ts';
import { ResponseCache } from './cache.ts';
import { isLoopback } from './loopback.ts';
import { DeltaRelay, Relay, SotwRelay, type AgentLogger, type Duplex, type RelayContext, type RelayProtocol, type UpstreamCall } from './relay.ts';

export type { AgentLogger } from './relay.ts';
export { isLoopback } from './loopback.ts';

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const METHODS: Record<RelayProtocol, string> = {
  sotw: `${SERVICE}/StreamAggregatedResources`,
  delta: `${SERVICE}/DeltaAggregatedResources`,
};

/** grpc-js's BACKOFF_JITTER: each reconnect delay is the nominal one ±20 %. */
const GRPC_RECONNECT_JITTER = 0.2;

/** When the control plane is back, relays waiting out a backoff reconnect at random within this. */
const RECONNECT_SPREAD_MS = 1_000;

export interface AgentOptions {
  /** Where local clients connect: a Unix socket, or a loopback address (anything else is refused). */
  readonly listen: { readonly socketPath: string } | { readonly address: string; readonly port: number };
  /**
   * Permissions of the socket file. Default 0o666: any local user may connect, so apps running
   * as other users can (who reaches the socket is decided by who gets its directory mounted).
   */
  readonly socketMode?: number;
  readonly controlPlane: {
    /** host:port of the control plane. */
    readonly target: string;
    /** PEM: the CA that signed the control plane's certificate, and the agent's own certificate and key. */
    readonly ca: Buffer;
    readonly cert: Buffer;
    readonly key: Buffer;
    /** The name to verify the control plane's certificate against, when it is not the target's host. */
    readonly serverName?: string | undefined;
  };
  readonly logger: AgentLogger;
  /** Local ADS streams open at once; more are refused with RESOURCE_EXHAUSTED. Default 1000. */
  readonly maxLocalStreams?: number;
  /** The largest request a local client may send, bytes. Default 1 MiB. */
  readonly maxRequestBytes?: number;
  /** Nodes whose answers are cached (least recently used go first). Default 1000. */
  readonly maxCachedNodes?: number;
  /** Reconnect backoff to the control plane: doubling from initialMs to maxMs, jittered. Default 250 ms to 15 s. */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /** A new upstream stream silent this long: local clients get the cache meanwhile. Default 3 s. */
  readonly cacheFallbackMs?: number;
}

export interface AgentStats {
  readonly localStreams: number;
  readonly upstreamStreams: number;
  /** false after a stream to the control plane failed, until one answers again; undefined before either. */
  readonly controlPlaneReachable: boolean | undefined;
  readonly cachedNodes: number;
  /** Responses the agent answered from its cache. */
  readonly servedFromCache: number;
  /** Local streams refused for max_local_streams. */
  readonly refusedStreams: number;
}

export interface RunningAgent {
  /** What a local client dials: `unix:///path/to.sock` or `127.0.0.1:PORT`. */
  readonly address: string;
  /** The TCP port, when listening on one. */
  readonly port: number | undefined;
  stats(): AgentStats;
  /** Ends every stream and stops listening. */
  close(): Promise<void>;
}

/** startAgent's options cannot work (bad TLS files, an address it may not or cannot listen on). */
export class AgentConfigError extends Error {
  override readonly name: string = 'AgentConfigError';
}

export class AgentListenError extends AgentConfigError {
  override readonly name = 'AgentListenError';
}

const passthrough = (message: Buffer) => message;

function method(protocol: RelayProtocol): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: METHODS[protocol],
    requestStream: true,
    responseStream: true,
    requestSerialize: passthrough,
    requestDeserialize: passthrough,
    responseSerialize: passthrough,
    responseDeserialize: passthrough,
  };
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const { logger } = options;
  const bindTarget = await bindAddress(options.listen);
  const maxLocalStreams = options.maxLocalStreams ?? 1000;

  let tls: ReturnType<typeof upstreamCredentials>;
  try {
    tls = upstreamCredentials(options.controlPlane);
  } catch (error) {
    throw new AgentConfigError(`agent: the control-plane TLS files cannot be used: ${(error as Error).message}`, { cause: error });
  }
  const { credentials, options: tlsOptions } = tls;
  const backoff = { initialMs: options.backoff?.initialMs ?? 250, maxMs: options.backoff?.maxMs ?? 15_000 };
  // grpc-js spreads each reconnect delay by ±20 % around a nominal one capped at max_reconnect_backoff_ms:
  // a nominal cap of maxMs / 1.2 keeps every delay, jitter included, within maxMs.
  const channelMaxMs = Math.max(1, Math.floor(backoff.maxMs / (1 + GRPC_RECONNECT_JITTER)));
  const upstream = new grpc.Client(options.controlPlane.target, credentials, {
    ...tlsOptions,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': -1,
    // A control plane that vanishes without closing the connection (a partition) is noticed within ~40 s.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.initial_reconnect_backoff_ms': Math.min(backoff.initialMs, channelMaxMs),
    'grpc.max_reconnect_backoff_ms': channelMaxMs,
    'grpc.enable_retries': 0,
  });

  const relays = new Set<Relay>();
  let reachable: boolean | undefined;
  let servedFromCache = 0;
  let refusedStreams = 0;
  let nonces = 0;
  let upstreamStreams = 0;
  const context: RelayContext = {
    cache: new ResponseCache(options.maxCachedNodes ?? 1000),
    logger,
    backoff,
    cacheFallbackMs: options.cacheFallbackMs ?? 3_000,
    get reachable() {
      return reachable;
    },
    openUpstream(protocol: RelayProtocol): UpstreamCall {
      // Wait for ready: while the control plane is away the call waits for the channel's next
      // successful connect, which comes within the backoff cap, instead of failing at once and
      // waiting out a backoff of its own on top of the channel's (18.8 s measured for a 15 s cap).
      const call = upstream.makeBidiStreamRequest(METHODS[protocol], passthrough, passthrough, new grpc.Metadata({ waitForReady: true })) as UpstreamCall;
      upstreamStreams++;
      call.on('status', () => upstreamStreams--);
      return call;
    },
    upstreamAnswered() {
      if (reachable === false) {
        logger.info({ controlPlane: options.controlPlane.target }, 'control plane reachable again');
        // The others need not wait out their backoff: changes made during the outage reach every client soon.
        for (const relay of relays) relay.retrySoon(RECONNECT_SPREAD_MS);
      }
      reachable = true;
    },
    upstreamFailed(status: grpc.StatusObject) {
      if (reachable !== false) {
        logger.warn(
          { controlPlane: options.controlPlane.target, code: grpc.status[status.code], details: clip(status.details) },
          'stream to the control plane failed; local clients keep their config and get the cached one, retrying',
        );
      }
      reachable = false;
    },
    servedFromCache() {
      servedFromCache++;
    },
    nextNonce: () => `switchyard-agent:${++nonces}`,
    closed(relay: Relay) {
      relays.delete(relay);
    },
  };

  const accept = (protocol: RelayProtocol) => (call: Duplex) => {
    if (relays.size >= maxLocalStreams) {
      refusedStreams++;
      logger.warn({ limit: maxLocalStreams }, 'local xDS stream refused: max_local_streams reached');
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `the agent already relays ${maxLocalStreams} xDS streams (its limit)` });
      return;
    }
    relays.add(protocol === 'sotw' ? new SotwRelay(context, call) : new DeltaRelay(context, call));
  };

  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxRequestBytes ?? 1024 * 1024,
    'grpc.max_send_message_length': -1,
  });
  server.addService(
    { StreamAggregatedResources: method('sotw'), DeltaAggregatedResources: method('delta') },
    { StreamAggregatedResources: accept('sotw'), DeltaAggregatedResources: accept('delta') },
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(bindTarget.uri, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(new AgentListenError(`agent: cannot listen on ${bindTarget.label}: ${error.message}`)) : resolve(bound)));
  });
  if (bindTarget.path !== undefined) chmodSync(bindTarget.path, options.socketMode ?? 0o666);
  const address = 'socketPath' in options.listen ? bindTarget.uri : `${bindTarget.host}:${port}`;
  logger.info({ address, controlPlane: options.controlPlane.target, maxLocalStreams }, 'agent listening');

  return {
    address,
    port: 'socketPath' in options.listen ? undefined : port,
    stats: () => ({
      localStreams: relays.size,
      upstreamStreams,
      controlPlaneReachable: reachable,
      cachedNodes: context.cache.nodes,
      servedFromCache,
      refusedStreams,
    }),
    close: async () => {
      for (const relay of [...relays]) relay.close();
      // Local clients keep their streams open for as long as they run: end them now.
      server.forceShutdown();
      upstream.close();
      if ('socketPath' in options.listen && existsSync(bindTarget.path!)) {
        try {
          unlinkSync(bindTarget.path!);
        } catch {
          // already gone
        }
      }
    },
  };
}

/** The TLS server name sent to a control plane dialled by IP address (.invalid: a name that never resolves, RFC 2606). */
const IP_TARGET_SERVER_NAME = 'xds-server.invalid';

/**
 * mTLS to the control plane. grpc-js sends the target's host as the TLS
 * server name, and Node refuses an IP address there (SNI is for host names),
 * so a target given by IP gets a placeholder name and its certificate is
 * checked against the IP itself.
 */
function upstreamCredentials(controlPlane: AgentOptions['controlPlane']): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  const { ca, key, cert, serverName, target } = controlPlane;
  if (serverName !== undefined) {
    return { credentials: grpc.credentials.createSsl(ca, key, cert), options: { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName } };
  }
  const host = target.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) === 0) return { credentials: grpc.credentials.createSsl(ca, key, cert), options: {} };
  return {
    credentials: grpc.credentials.createSsl(ca, key, cert, { checkServerIdentity: (_name, peer) => checkServerIdentity(host, peer) }),
    options: { 'grpc.ssl_target_name_override': IP_TARGET_SERVER_NAME },
  };
}

interface BindTarget {
  readonly uri: string;
  readonly label: string;
  readonly host?: string;
  readonly path?: string;
}

async function bindAddress(listen: AgentOptions['listen']): Promise<BindTarget> {
  if ('socketPath' in listen) {
    const socketPath = path.resolve(listen.socketPath);
    await removeStaleSocket(socketPath);
    return { uri: `unix://${socketPath}`, label: socketPath, path: socketPath };
  }
  if (!isLoopback(listen.address)) {
    throw new AgentListenError(
      `agent: refusing to listen on ${listen.address}: local clients speak plaintext xDS to the agent, so it listens on a loopback address (127.0.0.1, ::1) or a Unix socket only`,
    );
  }
  if (!Number.isInteger(listen.port) || listen.port < 0 || listen.port > 65_535) throw new AgentListenError(`agent: bad port ${listen.port}`);
  const host = isIP(listen.address) === 6 || listen.address.startsWith('[') ? `[${listen.address.replace(/^\[(.*)\]$/, '$1')}]` : listen.address;
  return { uri: `${host}:${listen.port}`, label: `${host}:${listen.port}`, host };
}

/** A socket file left by an agent that died is removed; one that still answers means another agent runs. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  if (!existsSync(socketPath)) return;
  if (!statSync(socketPath).isSocket()) throw new AgentListenError(`agent: ${socketPath} exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new AgentListenError(`agent: ${socketPath} is in use (another agent listens on it)`);
  unlinkSync(socketPath);
}
