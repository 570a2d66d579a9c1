/**
 * `switchyard control-plane`: the config file's clusters, routes and
 * listeners, with endpoints from their discovery sources, served over ADS
 * with mTLS. A replica keeps no state beyond what its sources tell it, so
 * several can run side by side: resource versions are hashes of content, so
 * a client that moves to another replica is not sent what it already has.
 *
 * An optional `admin` section serves /metrics, /ready and /live on loopback.
 */
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { startAdsServer, type AdsServer } from '../server/ads-server.ts';
import { ConfigResourceProvider } from './config-provider.ts';
import { MergedResourceProvider } from './merged-provider.ts';
import { GatewayResourceProvider } from '../gateway-api/provider.ts';
import type { LoadedControlPlaneConfig } from './load.ts';
import { listen } from '../../listener/listen.ts';
import { ReloadableServerCredentials } from './reloadable-credentials.ts';

export interface ControlPlane {
  /** The ADS port. */
  readonly port: number;
  readonly server: AdsServer;
  readonly provider: ConfigResourceProvider;
  /** With a gateway_api section. */
  readonly gatewayApi: GatewayResourceProvider | undefined;
  /** Where /metrics is served, with an admin section. */
  readonly adminAddress: AddressInfo | undefined;
  /**
   * Applies a config loaded again (SIGHUP): clusters, routes, listeners,
   * authorization, limits, debounce, log level and the TLS files take effect;
   * `server` and `admin` need a restart and are kept as they were (named in
   * the result). Clusters whose config did not change keep their sources.
   */
  reload(loaded: LoadedControlPlaneConfig): ReloadSummary;
  close(graceMs?: number): Promise<void>;
}

export interface ReloadSummary {
  readonly clusters: { readonly added: readonly string[]; readonly changed: readonly string[]; readonly removed: readonly string[] };
  readonly tlsChanged: boolean;
  /** Sections that changed but need a restart to take effect: kept as they were. */
  readonly needRestart: readonly string[];
}

export async function startControlPlane(loaded: LoadedControlPlaneConfig, logger: Logger = pino({ level: loaded.config.log_level })): Promise<ControlPlane> {
  const { config, tls } = loaded;
  const registry = new Registry();
  const registers = [registry];
  const nacks = new Counter({ name: 'switchyard_xds_nacks_total', help: 'Responses clients rejected (NACK), by resource type (listener, route, cluster, endpoint).', labelNames: ['type'], registers });
  const acks = new Counter({ name: 'switchyard_xds_acks_total', help: 'Responses clients accepted (ACK), by resource type.', labelNames: ['type'], registers });
  const refusals = new Counter({ name: 'switchyard_xds_refused_streams_total', help: 'Streams refused: unknown identity, node id not allowed, over a limit.', labelNames: ['reason'], registers });

  const provider = new ConfigResourceProvider(config, { logger });
  provider.start();
  let gatewayApi: GatewayResourceProvider | undefined;
  if (config.gateway_api) {
    const settings = config.gateway_api;
    const k8s = await import('@kubernetes/client-node');
    const kubeConfig = new k8s.KubeConfig();
    if (settings.kubeconfig !== undefined) kubeConfig.loadFromFile(settings.kubeconfig);
    else kubeConfig.loadFromDefault();
    gatewayApi = new GatewayResourceProvider({
      kubeConfig,
      controllerName: settings.controller_name,
      addresses: settings.addresses,
      lease: { namespace: settings.lease.namespace, name: settings.lease.name, durationMs: settings.lease.duration, retryMs: settings.lease.retry },
      identity: `${hostname()}/${process.pid}`,
      statusRatePerSecond: settings.status_rate,
      lbPolicy: settings.lb_policy,
      connectTimeoutMs: settings.connect_timeout,
      logger,
    });
    await gatewayApi.start();
  }
  const served = gatewayApi ? new MergedResourceProvider([provider, gatewayApi]) : provider;
  const credentials = new ReloadableServerCredentials(tls);
  let running = config;
  let server: AdsServer;
  try {
    server = await startAdsServer({
      address: config.server.address,
      port: config.server.port,
      credentials: credentials.credentials,
      provider: served,
      authorization: config.authorization,
      limits: config.limits,
      debounceMs: config.debounce,
      controlPlaneId: `${hostname()}/${process.pid}`,
      logger,
      onNack: (event) => nacks.inc({ type: event.type }),
      onAck: (event) => acks.inc({ type: event.type }),
      onRefusal: (event) => refusals.inc({ reason: grpc.status[event.code] ?? String(event.code) }),
    });
  } catch (error) {
    provider.close();
    await gatewayApi?.close();
    throw error;
  }
  new Gauge({
    name: 'switchyard_xds_streams', help: 'Open ADS streams.', registers,
    collect() { this.set(server.streamCount); },
  });
  new Counter({
    name: 'switchyard_xds_streams_shed_total', help: 'Streams refused because this replica held limits.max_streams (UNAVAILABLE with a retry hint).', registers,
    collect() { this.reset(); this.inc(server.stats.shed); },
  });
  new Counter({
    name: 'switchyard_xds_streams_stalled_total', help: 'Streams reset because their client read nothing for limits.stalled_stream_timeout.', registers,
    collect() { this.reset(); this.inc(server.stats.stalled); },
  });
  new Gauge({
    name: 'switchyard_xds_bytes_in_flight', help: 'Response bytes written to streams and not yet sent on their connections (bounded by the fan-out budget).', registers,
    collect() { this.set(server.bytesInFlight.now); },
  });
  new Gauge({
    name: 'switchyard_xds_resources', help: 'Resources served, by type (clusters as sent to gRPC clients).', labelNames: ['type'], registers,
    collect() {
      for (const type of ['listener', 'route', 'cluster', 'endpoint'] as const) this.set({ type }, served.resources(type, { leastRequest: false, switchyardPolicies: false }).size);
    },
  });
  collectDefaultMetrics({ register: registry });
  logger.info({ address: `${config.server.address}:${server.port}`, clusters: config.clusters.length, listeners: config.listeners.length }, 'xDS control plane listening (mTLS)');

  let admin: http.Server | undefined;
  if (config.admin) {
    admin = http.createServer((request, response) => {
      void answer(request.url ?? '/').then(([status, type, body]) => {
        response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
        response.end(body);
      });
    });
    const { address, port } = config.admin;
    await listen(admin, { port, host: address });
  }
  const answer = async (url: string): Promise<[number, string, string]> => {
    if (url === '/metrics') return [200, registry.contentType, await registry.metrics()];
    if (url === '/ready' || url === '/live') return [200, 'text/plain', url.slice(1)];
    return [404, 'text/plain', 'not found'];
  };

  return {
    port: server.port,
    server,
    provider,
    gatewayApi,
    adminAddress: admin?.address() as AddressInfo | undefined,
    reload(next) {
      const { config: wanted } = next;
      const needRestart: string[] = [];
      if (wanted.server.address !== running.server.address || wanted.server.port !== running.server.port) needRestart.push('server.address/port');
      if (JSON.stringify(wanted.admin) !== JSON.stringify(running.admin)) needRestart.push('admin');
      if (JSON.stringify(wanted.gateway_api) !== JSON.stringify(running.gateway_api)) needRestart.push('gateway_api');
      const clusters = provider.reconfigure(wanted);
      // Pushes at once to every stream: the new resources under the new rules.
      server.update({ authorization: wanted.authorization, limits: wanted.limits, debounceMs: wanted.debounce });
      const tlsChanged = credentials.differs(next.tls);
      if (tlsChanged) credentials.update(next.tls);
      logger.level = wanted.log_level;
      running = { ...wanted, server: { ...wanted.server, address: running.server.address, port: running.server.port }, admin: running.admin, gateway_api: running.gateway_api };
      return { clusters, tlsChanged, needRestart };
    },
    async close(graceMs = 1_000) {
      await server.close(graceMs);
      provider.close();
      await gatewayApi?.close();
      if (admin) await new Promise<void>((resolve) => { admin!.close(() => resolve()); admin!.closeAllConnections(); });
    },
  };
}
