/**
 * The admin interface: HTTP/1.1 and JSON on a listener of its own, loopback
 * unless the config says `allow_remote` (see admin-schema.ts). It shows what
 * the proxy believes and lets an operator drain it or change the log level.
 *
 *   GET  /                 this list, as JSON
 *   GET  /ready, /live     as on the health port
 *   GET  /metrics          Prometheus text format
 *   GET  /config           the config in force, credentials redacted
 *   GET  /clusters         every endpoint: health, ejection, weight, active RPCs, latency
 *   GET  /routes           the route table, in match order
 *   GET  /certs            loaded certificates, soonest expiry first
 *   GET  /balance          the dashboard's data: the last seconds of traffic per endpoint
 *   GET  /dashboard        the live dashboard (a page and its two assets, shipped in the package)
 *   POST /drain            starts a graceful drain, as SIGTERM does
 *   GET  /log-level        the current level; POST /log-level?level=debug changes it
 *
 * Browsers on the operator's machine can reach loopback too, so a page from
 * elsewhere must not be able to use it: requests must name a loopback Host
 * (against DNS rebinding), and a POST that carries a foreign Origin is refused.
 */
import { readFile } from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Cluster } from '../cluster/cluster.ts';
import type { SwitchyardConfig } from '../config/schema.ts';
import type { Telemetry } from '../metrics/telemetry.ts';
import type { Route } from '../router/route-table.ts';
import type { LoadedCertificate } from '../security/certificate-expiry.ts';
import { balanceView, certificateView, clusterView, redactSecrets, routesView, type WebSocketBalance } from './admin-views.ts';
import { isLoopbackAddress, type AdminSettings } from '../config/admin-schema.ts';
import type { Readiness } from './health-endpoint.ts';
import { listen } from '../listener/listen.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What the admin interface reads and drives; Switchyard provides it. */
export interface AdminTarget {
  readonly config: SwitchyardConfig;
  readonly clusters: ReadonlyMap<string, Cluster>;
  readonly state: Readiness | 'stopped';
  readonly telemetry: Telemetry;
  routes(): readonly Route[];
  certificates(): LoadedCertificate[];
  /** Starts a graceful drain (and, in `switchyard run`, the exit after it). */
  requestDrain(): void;
  logLevel: string;
}

export interface AdminServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

const MAX_HEADER_BYTES = 8 * 1024;
const MAX_BODY_BYTES = 1024;
const DASHBOARD_FILES: Record<string, string> = {
  '/dashboard': 'index.html',
  '/dashboard/': 'index.html',
  '/dashboard/dashboard.js': 'dashboard.js',
  '/dashboard/dashboard.css': 'dashboard.css',
};
const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};
const DASHBOARD_DIR = new URL('./dashboard/', import.meta.url);

const INDEX = {
  'GET /': 'this list',
  'GET /ready': 'readiness: 200 while serving, 503 while starting or draining',
  'GET /live': 'liveness',
  'GET /metrics': 'Prometheus metrics',
  'GET /config': 'the config in force, credentials redacted',
  'GET /clusters': 'endpoints with health, ejection, weight, active RPCs and latency',
  'GET /routes': 'the route table, in match order',
  'GET /certs': 'loaded certificates, soonest expiry first',
  'GET /balance': 'the last seconds of traffic per endpoint (the dashboard\'s data)',
  'GET /dashboard': 'the live dashboard',
  'POST /drain': 'start a graceful drain',
  'GET /log-level': 'the log level; POST /log-level?level=LEVEL changes it',
};

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export async function startAdminServer(settings: AdminSettings, target: AdminTarget): Promise<AdminServer> {
  const server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: 5_000, requestTimeout: 10_000, keepAliveTimeout: 5_000 }, (request, response) => {
    handle(request, settings, target).then(
      (reply) => send(response, reply),
      (error: unknown) => {
        const status = error instanceof HttpError ? error.status : 500;
        send(response, json(status, { error: (error as Error).message }));
      },
    );
  });
  server.maxHeadersCount = 64;
  // exclusive: in a --workers worker, bind a port of its own instead of sharing the primary's.
  const address = await listen(server, { port: settings.port, host: settings.address, exclusive: true });
  server.on('error', () => {});
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

interface Reply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string | Buffer;
}

async function handle(request: http.IncomingMessage, settings: AdminSettings, target: AdminTarget): Promise<Reply> {
  if (!settings.allow_remote) checkLocalRequest(request);
  const url = new URL(request.url ?? '/', 'http://admin.invalid');
  const route = `${request.method} ${url.pathname}`;
  const dashboardFile = DASHBOARD_FILES[url.pathname];
  if (dashboardFile && (request.method === 'GET' || request.method === 'HEAD')) {
    const extension = dashboardFile.slice(dashboardFile.lastIndexOf('.') + 1);
    return { status: 200, contentType: CONTENT_TYPES[extension]!, body: await readFile(new URL(dashboardFile, DASHBOARD_DIR)) };
  }
  switch (route) {
    case 'GET /':
      return json(200, INDEX);
    case 'GET /ready':
      return text(target.state === 'ready' ? 200 : 503, target.state === 'stopped' ? 'draining' : target.state);
    case 'GET /live':
      return text(200, 'live');
    case 'GET /metrics': {
      const { contentType, body } = await target.telemetry.metrics.render();
      return { status: 200, contentType, body };
    }
    case 'GET /config':
      return json(200, redactSecrets(target.config));
    case 'GET /clusters':
      return json(200, { clusters: [...target.clusters.values()].map(clusterView) });
    case 'GET /routes':
      return json(200, { routes: redactSecrets(routesView(target.config.routes, target.routes())) });
    case 'GET /certs':
      return json(200, { certificates: target.certificates().map(certificateView) });
    case 'GET /balance':
      return json(200, balanceView(target.clusters.values(), target.telemetry.balance, target.telemetry.recentChanges, websocketBalance(target)));
    case 'POST /drain': {
      checkSameOrigin(request);
      const already = target.state !== 'ready' && target.state !== 'starting';
      target.requestDrain();
      return json(already ? 200 : 202, { state: 'draining', message: already ? 'already draining' : 'drain started: /ready answers 503, then GOAWAY after drain.delay' });
    }
    case 'GET /log-level':
      return json(200, { level: target.logLevel });
    case 'POST /log-level': {
      checkSameOrigin(request);
      const level = url.searchParams.get('level') ?? await levelFromBody(request);
      if (!LOG_LEVELS.includes(level as LogLevel)) throw new HttpError(400, `level must be one of ${LOG_LEVELS.join(', ')}; got "${level}"`);
      const previous = target.logLevel;
      target.logLevel = level;
      return json(200, { level, previous });
    }
    default: {
      const known = Object.keys(INDEX).some((entry) => entry.endsWith(` ${url.pathname}`));
      if (known) throw new HttpError(405, `${request.method} is not allowed on ${url.pathname}`);
      throw new HttpError(404, `no admin endpoint ${url.pathname}; GET / lists them`);
    }
  }
}

/** Against DNS rebinding: a page on evil.example that resolves to 127.0.0.1 still sends Host: evil.example. */
function checkLocalRequest(request: http.IncomingMessage): void {
  const host = request.headers.host;
  const name = host?.startsWith('[') ? host.slice(1, host.indexOf(']')) : host?.replace(/:\d+$/, '');
  if (name === undefined || !isLoopbackAddress(name)) throw new HttpError(403, 'the admin interface answers only requests addressed to a loopback host');
}

/** A page elsewhere can make a browser POST here; browsers then send its Origin, which must be this host. */
function checkSameOrigin(request: http.IncomingMessage): void {
  const origin = request.headers.origin;
  if (origin === undefined) return;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    throw new HttpError(403, 'malformed Origin');
  }
  if (originHost !== request.headers.host) throw new HttpError(403, `cross-origin ${request.method} refused (Origin ${origin})`);
}

async function levelFromBody(request: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks).toString('utf8').trim();
  if (body === '') throw new HttpError(400, 'give the level as ?level=LEVEL or a JSON body {"level": "LEVEL"}');
  try {
    const parsed = JSON.parse(body) as { level?: unknown };
    return String(parsed.level);
  } catch {
    throw new HttpError(400, 'the body must be JSON: {"level": "LEVEL"}');
  }
}

function json(status: number, value: unknown): Reply {
  return { status, contentType: 'application/json; charset=utf-8', body: `${JSON.stringify(value, null, 2)}\n` };
}

function text(status: number, body: string): Reply {
  return { status, contentType: 'text/plain; charset=utf-8', body };
}

function send(response: http.ServerResponse, reply: Reply): void {
  if (response.headersSent) return;
  response.writeHead(reply.status, {
    'content-type': reply.contentType,
    'content-length': Buffer.byteLength(reply.body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  response.end(response.req.method === 'HEAD' ? undefined : reply.body);
}

/** The clusters WebSocket routes use and the open sessions per endpoint, when the proxy counts them. */
function websocketBalance(target: AdminTarget): WebSocketBalance | undefined {
  const source = target.telemetry.websocket?.source;
  if (!source) return undefined;
  return { clusters: new Set(target.config.websocket.routes.map((route) => route.cluster)), connections: source.perEndpoint() };
}
