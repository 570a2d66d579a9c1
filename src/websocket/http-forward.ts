/**
 * Plain HTTP/1.1 requests on a WebSocket route that says `forward_requests`
 * (the page that opens the socket, a long-poll fallback): forwarded to the
 * route's cluster as they are, bodies streamed both ways, placed as sessions
 * are (the affinity cookie, then the policy) and counted on the endpoint
 * while in flight. One connection per request, no retries: this is a
 * convenience beside the tunnels, not a general HTTP proxy.
 */
import type * as http from 'node:http';
import { httpModule, httpsModule } from '../builtins.ts';
import type { Cluster } from '../cluster/cluster.ts';
import { answered, failed, type Outcome } from '../grpc/outcome.ts';
import { Status } from '../grpc/status.ts';
import type { UpstreamTls } from '../upstream/endpoint-pool.ts';
import type { AffinityKey } from './affinity.ts';
import { passableFields } from './client-side.ts';
import { place } from './placement.ts';
import type { WebSocketRoute } from './routes.ts';
import type { SessionRegistry } from './sessions.ts';
import { upstreamRequestHeaders } from './upstream-headers.ts';

export interface ForwardOptions {
  readonly cluster: Cluster | undefined;
  readonly route: WebSocketRoute;
  readonly sessions: SessionRegistry;
  readonly key: AffinityKey | undefined;
  readonly tls: UpstreamTls | undefined;
  readonly peer: string | undefined;
  readonly listenerTls: boolean;
  readonly trustedHops: number;
}

export function forwardRequest(request: http.IncomingMessage, response: http.ServerResponse, options: ForwardOptions): void {
  const { cluster, route } = options;
  if (!cluster) return answer(response, 503, 'the route\'s cluster does not exist');
  const placement = place({ cluster, route, cookies: request.headers.cookie, hashKey: cluster.hashHeader && headerText(request.headers[cluster.hashHeader]), avoid: new Set(), key: options.key }, options.sessions);
  if ('refused' in placement) return answer(response, 503, placement.refused === 'affinity_unavailable' ? placement.message : 'no healthy endpoint');
  const endpoint = placement.endpoint;
  const started = performance.now();
  let released = false;
  const release = (outcome: Outcome) => {
    if (released) return;
    released = true;
    cluster.release(endpoint, performance.now() - started, outcome);
  };
  const headers = upstreamRequestHeaders({ headers: request.headers, host: request.headers.host, ip: options.peer ?? 'unknown', tls: options.listenerTls }, route, options.trustedHops);
  let outgoing: http.ClientRequest;
  try {
    outgoing = (options.tls ? httpsModule() : httpModule()).request({
    host: endpoint.address.host,
    port: endpoint.address.port,
    method: request.method,
    path: request.url,
    headers,
    setHost: false,
    agent: false,
    ...(options.tls && { ca: options.tls.ca, cert: options.tls.cert, key: options.tls.key, servername: options.tls.serverName, ALPNProtocols: ['http/1.1'] }),
    });
  } catch (error) {
    release(failed('upstream_protocol_error'));
    return answer(response, 502, `the request cannot be forwarded: ${(error as Error).message}`);
  }
  const timer = setTimeout(() => {
    release(failed('per_try_timeout'));
    outgoing.destroy();
    if (!response.headersSent) answer(response, 504, 'the backend did not answer in time');
  }, route.config.handshake_timeout);
  timer.unref();
  outgoing.on('response', (incoming) => {
    clearTimeout(timer);
    const fields = passableFields(incoming.headers);
    if (placement.setCookie) fields['set-cookie'] = [...(incoming.headers['set-cookie'] ?? []), placement.setCookie];
    response.writeHead(incoming.statusCode ?? 502, fields);
    incoming.pipe(response);
    incoming.on('end', () => release(answered((incoming.statusCode ?? 502) >= 500 ? Status.UNAVAILABLE : Status.OK)));
    incoming.on('error', () => response.destroy());
  });
  outgoing.on('error', () => {
    clearTimeout(timer);
    release(failed('upstream_connect_failure'));
    if (!response.headersSent) answer(response, 502, 'the backend could not be reached');
    else response.destroy();
  });
  // The client left: the backend's request goes too.
  response.on('close', () => {
    clearTimeout(timer);
    if (!response.writableFinished) outgoing.destroy();
    release(failed('client_cancelled'));
  });
  request.pipe(outgoing);
}

function answer(response: http.ServerResponse, status: number, message: string): void {
  const body = `${message}\n`;
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}
