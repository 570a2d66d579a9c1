/**
 * WebSocket through Switchyard: what a listener hands over of HTTP/1.1
 * upgrades, plain HTTP/1.1 requests on WebSocket routes, and HTTP/2 extended
 * CONNECT streams (RFC 8441). Each upgrade, in this order: draining (503), a
 * route by Host and path (404), upgrades allowed there (403), the handshake
 * (400, 405, 426), the origin (403), the listener's and the client address's
 * caps (503), the cluster (503), a place (affinity cookie or the policy;
 * 503), the backend's handshake on a connection of its own (another endpoint
 * after a connect failure; 502, 504, or the backend's own refusal), then the
 * tunnel (session.ts). Every upgrade ends in one record (session-record.ts).
 *
 * It reads the config, clusters and secrets in force once per upgrade, so a
 * reload applies to the next upgrade and never touches an open tunnel.
 */
import type * as http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Cluster } from '../cluster/cluster.ts';
import type { ConfigSecrets } from '../config/config-files.ts';
import type { ListenerConfig, SwitchyardConfig } from '../config/schema.ts';
import { answered, failed, type Outcome } from '../grpc/outcome.ts';
import { Status } from '../grpc/status.ts';
import type { HeaderMap, TunnelStream } from '../grpc/streams.ts';
import type { UpstreamTls } from '../upstream/endpoint-pool.ts';
import { AffinityKey } from './affinity.ts';
import { upgradeBackend, type BackendAnswer } from './backend-upgrade.ts';
import { Http1Client, Http2Client, passableFields, type ClientSide } from './client-side.ts';
import { forwardRequest } from './http-forward.ts';
import { acceptFor, checkHttp1Handshake, checkHttp2Handshake, newKey, type RequestHeaders } from './handshake.ts';
import { place } from './placement.ts';
import { WebSocketRoutes, type WebSocketRoute } from './routes.ts';
import { TunnelSession } from './session.ts';
import type { UpgradeResult, WebSocketRecord } from './session-record.ts';
import { SessionRegistry, type ListenerKey } from './sessions.ts';
import { SocketEnd } from './tunnel-ends.ts';
import { upstreamRequestHeaders } from './upstream-headers.ts';

/** What is in force when an upgrade arrives. */
export interface WebSocketServing {
  readonly config: SwitchyardConfig;
  readonly clusters: ReadonlyMap<string, Cluster>;
  readonly secrets: ConfigSecrets;
}

export interface WebSocketProxyOptions {
  serving(): WebSocketServing;
  /** True once the proxy is draining: new upgrades get 503. */
  draining(): boolean;
  /** An upgrade has been answered: refused (then onRecord follows at once), or upgraded. */
  onUpgradeAnswered?(record: WebSocketRecord): void;
  /** Every upgrade's record, once: when refused, or when its session ended. */
  onRecord(record: WebSocketRecord): void;
}

/** Endpoints one upgrade may try: a connect failure moves it to another, twice at most. */
const MAX_ATTEMPTS = 3;

/** What an upgrade says of itself, whichever protocol brought it. */
interface UpgradeContext {
  readonly protocol: 'http/1.1' | 'h2';
  readonly method: string;
  readonly target: string;
  readonly host: string | undefined;
  readonly headers: RequestHeaders;
  readonly listener: ListenerKey;
  readonly ip: string;
  readonly peer: string;
  readonly tls: boolean;
}

export class WebSocketProxy {
  readonly sessions = new SessionRegistry();
  readonly #options: WebSocketProxyOptions;
  readonly #routes = new WeakMap<object, WebSocketRoutes>();
  #key: AffinityKey | undefined;

  constructor(options: WebSocketProxyOptions) {
    this.#options = options;
  }

  /** An HTTP/1.1 upgrade (Node's server hands the socket over). Always answers it. */
  upgrade(request: http.IncomingMessage, socket: Duplex, head: Buffer, listener: string): boolean {
    const client = new Http1Client(socket, head);
    this.#serve(client, http1Context(request, socket as Socket, listener)).catch((error: unknown) => unexpected(client, error));
    return true;
  }

  /**
   * A plain HTTP/1.1 request: on a WebSocket route, forwarded when the route says so, else answered
   * 426 (or 400 for an upgrade missing `Connection: Upgrade`). False when no route takes it.
   */
  request(request: http.IncomingMessage, response: http.ServerResponse, listener: string): boolean {
    const serving = this.#options.serving();
    const route = this.#routesOf(serving.config).match(request.headers.host, request.url ?? '/');
    if (!route) return false;
    if (request.headers.upgrade !== undefined && route.config.upgrades) {
      // Node hands over only upgrades that also say `Connection: Upgrade`; this one did not.
      const refusal = checkHttp1Handshake(request.method ?? 'GET', request.headers);
      if ('status' in refusal) {
        answerPlain(response, refusal.status, refusal.message, refusal.headers);
        return true;
      }
    }
    if (route.config.forward_requests) {
      const cluster = serving.clusters.get(route.config.cluster);
      const socket = request.socket;
      const listenerConfig = listenerNamed(serving.config, listener);
      forwardRequest(request, response, {
        cluster,
        route,
        sessions: this.sessions,
        key: this.#affinityKey(serving.secrets),
        tls: cluster && clusterTls(serving, cluster),
        peer: socket.remoteAddress,
        listenerTls: listenerConfig?.tls !== undefined,
        trustedHops: listenerConfig?.trusted_proxy_hops ?? 0,
      });
      return true;
    }
    answerPlain(response, 426, 'this path serves WebSocket: upgrade with "Upgrade: websocket"', { upgrade: 'websocket', connection: 'Upgrade' });
    return true;
  }

  /** Whether an HTTP/2 request is an extended CONNECT (RFC 8441), which stream() serves rather than the gRPC path. */
  static isExtendedConnect(headers: HeaderMap): boolean {
    return headers[':method'] === 'CONNECT' && headers[':protocol'] !== undefined;
  }

  /** An HTTP/2 extended CONNECT stream. */
  stream(stream: TunnelStream, headers: HeaderMap, listener: string): void {
    const socket = stream.connection?.socket;
    const client = new Http2Client(stream);
    this.#serve(client, {
      protocol: 'h2',
      method: 'CONNECT',
      target: typeof headers[':path'] === 'string' ? headers[':path'] : '/',
      host: typeof headers[':authority'] === 'string' ? headers[':authority'] : undefined,
      headers,
      listener: { name: listener, port: socket?.localPort ?? 0 },
      ip: socket?.remoteAddress ?? 'unknown',
      peer: socket ? `${socket.remoteAddress}:${socket.remotePort}` : 'unknown',
      tls: socket !== undefined && 'encrypted' in socket,
    }).catch((error: unknown) => unexpected(client, error));
  }

  /** Drain of one listener: close 1001 to its sessions (and to any whose upgrade completes later). */
  goAway(listener: ListenerKey): number {
    return this.sessions.goAway(listener);
  }

  async #serve(client: ClientSide, context: UpgradeContext): Promise<void> {
    const record = newRecord(context);
    const finish = (status: number, result: UpgradeResult, message: string, fields: Record<string, string> = {}) => {
      record.result = result;
      record.status = status;
      record.error = message;
      if (!client.gone) client.refuse(status, { 'content-type': 'text/plain; charset=utf-8', ...fields }, `${message}\n`);
      this.#done(record);
    };
    const serving = this.#options.serving();
    if (this.#options.draining()) return finish(503, 'draining', 'the proxy is shutting down; reconnect', { 'retry-after': '1' });
    const route = this.#routesOf(serving.config).match(context.host, context.target);
    if (!route) return finish(404, 'no_route', 'no WebSocket route for this host and path');
    record.route = route.name;
    if (!route.config.upgrades) return finish(403, 'upgrades_disabled', 'WebSocket upgrades are not allowed on this route');
    const handshake = context.protocol === 'h2' ? checkHttp2Handshake(context.headers) : checkHttp1Handshake(context.method, context.headers);
    if (handshake !== undefined && 'status' in handshake) return finish(handshake.status, handshake.result as UpgradeResult, handshake.message, handshake.headers);
    const origin = context.headers['origin'];
    const allowed = route.config.allowed_origins;
    if (allowed && typeof origin === 'string' && !allowed.includes(origin.toLowerCase())) return finish(403, 'forbidden_origin', `origin ${origin} may not open a session here`);
    const listenerConfig = listenerNamed(serving.config, context.listener.name);
    const admission = this.sessions.admit(context.listener, context.ip, {
      maxConnections: listenerConfig?.websocket.max_connections,
      maxConnectionsPerIp: listenerConfig?.websocket.max_connections_per_ip,
    });
    if (typeof admission === 'string') {
      return finish(503, admission, admission === 'ip_limit' ? 'too many WebSocket sessions from this address' : 'too many WebSocket sessions on this listener', { 'retry-after': '5' });
    }
    const cluster = serving.clusters.get(route.config.cluster);
    record.cluster = route.config.cluster;
    if (!cluster) {
      this.sessions.release(admission);
      return finish(503, 'no_cluster', 'the route\'s cluster does not exist');
    }
    const clientKey = handshake && 'key' in handshake ? handshake.key : undefined;
    const backendKey = clientKey ?? newKey();
    const headers = upstreamRequestHeaders(context, route, listenerConfig?.trusted_proxy_hops ?? 0);
    const avoid = new Set<Parameters<Cluster['release']>[0]>();
    const key = this.#affinityKey(serving.secrets);
    let answer: BackendAnswer | undefined;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const placement = place({ cluster, route, cookies: context.headers['cookie'], hashKey: hashKeyOf(cluster, context.headers), avoid, key }, this.sessions);
      if ('refused' in placement) {
        this.sessions.release(admission);
        return finish(503, placement.refused, placement.refused === 'affinity_unavailable' ? placement.message : 'no healthy endpoint');
      }
      const endpoint = placement.endpoint;
      record.endpoint = endpoint.key;
      record.affinity = placement.affinity;
      const started = performance.now();
      answer = await upgradeBackend(
        { host: endpoint.address.host, port: endpoint.address.port, tls: clusterTls(serving, cluster) },
        { target: context.target, headers, key: backendKey, offered: context.headers, connectTimeoutMs: cluster.config.connect_timeout, handshakeTimeoutMs: route.config.handshake_timeout },
      ).answer;
      const latency = performance.now() - started;
      if (answer.kind !== 'upgraded') {
        cluster.release(endpoint, latency, outcomeOf(answer));
        if (answer.kind === 'connect_failure' && attempt < MAX_ATTEMPTS && !client.gone) {
          avoid.add(endpoint);
          continue;
        }
        this.sessions.release(admission);
        if (answer.kind === 'refused') {
          record.result = 'backend_refused';
          record.status = answer.status;
          if (!client.gone) client.refuse(answer.status, passableFields(answer.headers), answer.body);
          return this.#done(record);
        }
        const [status, result] = answer.kind === 'timeout' ? [504, 'handshake_timeout' as const] : answer.kind === 'bad_accept' ? [502, 'bad_accept' as const] : [502, 'connect_failure' as const];
        return finish(status, result, answer.kind === 'bad_accept' ? 'the backend did not complete the WebSocket handshake' : 'the backend could not be reached');
      }
      cluster.report(endpoint, latency, answered(Status.OK));
      if (client.gone) {
        answer.socket.destroy();
        endpoint.activeRequests--;
        this.sessions.release(admission);
        record.result = 'client_gone';
        return this.#done(record);
      }
      const fields = passableFields(answer.headers);
      if (placement.setCookie) fields['set-cookie'] = [...toList(fields['set-cookie']), placement.setCookie];
      const clientEnd = client.accept(fields, clientKey && acceptFor(clientKey));
      record.result = 'upgraded';
      record.status = context.protocol === 'h2' ? 200 : 101;
      this.#options.onUpgradeAnswered?.(record);
      const reserved = answer.negotiated.extensions !== undefined;
      const limits = { maxFrameBytes: route.config.max_frame_bytes, maxMessageBytes: route.config.max_message_bytes, maxFragments: route.config.max_fragments, reservedBitsAllowed: reserved };
      const session: TunnelSession = new TunnelSession({
        client: clientEnd,
        backend: new SocketEnd(answer.socket, answer.head),
        timeouts: {
          idleMs: route.config.idle_timeout,
          pingIntervalMs: route.config.ping_interval === 'off' ? undefined : route.config.ping_interval,
          pingTimeoutMs: route.config.ping_timeout,
          closeTimeoutMs: route.config.close_timeout,
          maxAgeMs: route.config.max_connection_age,
        },
        clientRules: { ...limits, masked: true },
        backendRules: { ...limits, masked: false },
        record,
        onEnded: (ended) => {
          this.sessions.closed(session, admission, cluster.name, endpoint.key);
          this.#options.onRecord(ended);
        },
      });
      session.start();
      this.sessions.opened(session, admission, cluster.name, endpoint);
      return;
    }
  }

  /** An upgrade that never became a session: answered and recorded at once. */
  #done(record: WebSocketRecord): void {
    this.#options.onUpgradeAnswered?.(record);
    this.#options.onRecord(record);
  }

  #routesOf(config: SwitchyardConfig): WebSocketRoutes {
    let routes = this.#routes.get(config.websocket);
    if (!routes) this.#routes.set(config.websocket, (routes = new WebSocketRoutes(config.websocket.routes)));
    return routes;
  }

  #affinityKey(secrets: ConfigSecrets): AffinityKey | undefined {
    const material = secrets.affinityKey;
    if (!material) return undefined;
    if (!this.#key?.sameAs(material)) this.#key = new AffinityKey(material);
    return this.#key;
  }
}

/** A bug, not a client's or a backend's doing: the client gets 500 rather than a hang, and the process lives on. */
function unexpected(client: ClientSide, error: unknown): void {
  process.emitWarning(`WebSocket upgrade failed unexpectedly: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  if (!client.gone) client.refuse(500, { 'content-type': 'text/plain; charset=utf-8' }, 'the proxy failed to handle this upgrade\n');
}

function http1Context(request: http.IncomingMessage, socket: Socket, listener: string): UpgradeContext {
  return {
    protocol: 'http/1.1',
    method: request.method ?? 'GET',
    target: request.url ?? '/',
    host: request.headers.host,
    headers: request.headers,
    listener: { name: listener, port: socket.localPort ?? 0 },
    ip: socket.remoteAddress ?? 'unknown',
    peer: `${socket.remoteAddress}:${socket.remotePort}`,
    tls: 'encrypted' in socket,
  };
}

function newRecord(context: UpgradeContext): WebSocketRecord {
  const query = context.target.indexOf('?');
  return {
    time: Date.now(),
    startedAt: performance.now(),
    listener: context.listener.name,
    protocol: context.protocol,
    peer: context.peer,
    path: query < 0 ? context.target : context.target.slice(0, query),
    route: undefined,
    cluster: undefined,
    endpoint: undefined,
    result: 'no_route',
    status: 0,
    affinity: 'none',
    closedBy: 'none',
    closeCode: undefined,
    proxyReason: undefined,
    error: undefined,
    bytesFromClient: 0,
    bytesFromBackend: 0,
  };
}

/** How a failed handshake counts for the endpoint (outlier detection, the policy, metrics). */
function outcomeOf(answer: Exclude<BackendAnswer, { kind: 'upgraded' }>): Outcome {
  switch (answer.kind) {
    case 'connect_failure': return failed('upstream_connect_failure');
    case 'timeout': return failed('per_try_timeout');
    case 'broken': return failed('upstream_reset');
    case 'bad_accept': return failed('upstream_protocol_error');
    // A backend that answers is working; one that answers 5xx is failing, as UNAVAILABLE would say.
    case 'refused': return answered(answer.status >= 500 ? Status.UNAVAILABLE : Status.OK);
  }
}

function hashKeyOf(cluster: Cluster, headers: RequestHeaders): string | undefined {
  const name = cluster.hashHeader;
  if (name === undefined) return undefined;
  const value = headers[name];
  return value === undefined ? undefined : Array.isArray(value) ? value.join(',') : String(value);
}

function listenerNamed(config: SwitchyardConfig, name: string): ListenerConfig | undefined {
  return config.listeners.find((listener) => listener.name === name);
}

/** The cluster's upstream TLS, as the cluster's own pools have it. */
function clusterTls(serving: WebSocketServing, cluster: Cluster): UpstreamTls | undefined {
  const settings = cluster.config.tls;
  const files = serving.secrets.clusters.get(cluster.name);
  if (!settings || !files) return undefined;
  return { ...files, serverName: settings.server_name, verifySubjectAltNames: settings.verify_subject_alt_names };
}

function toList(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function answerPlain(response: http.ServerResponse, status: number, message: string, fields: Readonly<Record<string, string>> = {}): void {
  const body = `${message}\n`;
  response.writeHead(status, { ...fields, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

export type { WebSocketRoute };
