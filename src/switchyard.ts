/**
 * The composition root: builds listeners, the route table and clusters from
 * a validated config and wires them together. Everything a running proxy
 * owns is reachable from here, and stop() releases all of it.
 */
import pino, { type Logger } from 'pino';
import type { SwitchyardConfig } from './config/schema.ts';
import { Cluster } from './cluster/cluster.ts';
import { createDiscoverySource } from './discovery/create.ts';
import type { ConfigSecrets } from './config/load.ts';
import { startListener, type Listener } from './listener/listener.ts';
import { createAccessLog, type AccessLog } from './log/access-log.ts';
import { createRpcHandler } from './proxy/rpc-handler.ts';
import type { RpcRecord } from './proxy/rpc-record.ts';
import { RouteTable } from './router/route-table.ts';

const NO_SECRETS: ConfigSecrets = { listeners: new Map(), clusters: new Map() };

export interface SwitchyardOptions {
  readonly config: SwitchyardConfig;
  /** Certificates and keys the config names, read and checked by loadConfig. */
  readonly secrets?: ConfigSecrets;
  readonly logger?: Logger;
  /** Observes every finished RPC (tests, the demo's live view). */
  readonly onRpcEnd?: (record: RpcRecord) => void;
}

export class Switchyard {
  readonly listeners: readonly Listener[];
  readonly clusters: ReadonlyMap<string, Cluster>;
  readonly logger: Logger;
  readonly #accessLog: AccessLog;

  private constructor(listeners: Listener[], clusters: Map<string, Cluster>, logger: Logger, accessLog: AccessLog) {
    this.listeners = listeners;
    this.clusters = clusters;
    this.logger = logger;
    this.#accessLog = accessLog;
  }

  /** Starts every cluster's discovery, then every listener. If a listener cannot bind, everything started is stopped again. */
  static async start(options: SwitchyardOptions): Promise<Switchyard> {
    const { config } = options;
    const secrets = options.secrets ?? NO_SECRETS;
    const logger = options.logger ?? pino({ level: config.log_level });
    const clusters = new Map<string, Cluster>();
    for (const clusterConfig of config.clusters) {
      const cluster = new Cluster({
        config: clusterConfig,
        source: createDiscoverySource(clusterConfig),
        tls: clusterConfig.tls && secrets.clusters.has(clusterConfig.name)
          ? { ...secrets.clusters.get(clusterConfig.name)!, serverName: clusterConfig.tls.server_name }
          : undefined,
        logger,
      });
      clusters.set(clusterConfig.name, cluster);
      cluster.start();
    }
    const routes = new RouteTable(config.routes);
    const accessLog = createAccessLog(config.access_log.output);
    const observe = options.onRpcEnd;
    const handler = createRpcHandler({
      routes: () => routes,
      cluster: (name) => clusters.get(name),
      onRpcEnd: (record) => {
        accessLog.write(record);
        observe?.(record);
      },
    });

    const listeners: Listener[] = [];
    try {
      for (const listenerConfig of config.listeners) {
        const listener = await startListener(listenerConfig, secrets.listeners.get(listenerConfig.name), handler);
        listeners.push(listener);
        logger.info({ listener: listener.name, address: `${listener.address.address}:${listener.address.port}`, tls: !listenerConfig.plaintext }, 'listening');
      }
    } catch (error) {
      await Promise.all(listeners.map((listener) => listener.close(0)));
      for (const cluster of clusters.values()) cluster.close();
      await accessLog.close();
      throw error;
    }
    return new Switchyard(listeners, clusters, logger, accessLog);
  }

  /** The listener named `name`; throws if there is none (a programming error). */
  listener(name: string): Listener {
    const listener = this.listeners.find((candidate) => candidate.name === name);
    if (!listener) throw new Error(`no listener named "${name}"`);
    return listener;
  }

  /** Closes listeners (GOAWAY, in-flight RPCs finish within `graceMs`), then clusters and the access log. */
  async stop(graceMs = 5_000): Promise<void> {
    await Promise.all(this.listeners.map((listener) => listener.close(graceMs)));
    for (const cluster of this.clusters.values()) cluster.close();
    await this.#accessLog.close();
  }
}
