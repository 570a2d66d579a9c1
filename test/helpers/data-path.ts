/**
 * The RPC path without sockets: real route table, clusters, balancers, health,
 * limits, bridge and attempts, fed by fake streams and fake pools
 * (fake-streams.ts). An RPC is started with call() and driven by the test,
 * which plays the client and the backends.
 */
import { configSchema } from '../../src/config/schema.ts';
import { Cluster } from '../../src/cluster/cluster.ts';
import { createDiscoverySource } from '../../src/discovery/create.ts';
import { forwardRpc } from '../../src/proxy/forward-rpc.ts';
import type { BridgeLimits } from '../../src/proxy/rpc-bridge.ts';
import { RouteTable } from '../../src/router/route-table.ts';
import { newRpcRecord, type RpcRecord } from '../../src/grpc/rpc-record.ts';
import type { HeaderMap } from '../../src/grpc/streams.ts';
import type { Outcome } from '../../src/grpc/outcome.ts';
import { FakeDownstream, FakePools } from './fake-streams.ts';

export interface Call {
  readonly downstream: FakeDownstream;
  readonly record: RpcRecord;
  /** Resolves with the record once the RPC has finished (its downstream stream closed). */
  readonly finished: Promise<RpcRecord>;
}

export interface DataPath {
  readonly pools: FakePools;
  readonly clusters: Map<string, Cluster>;
  /** Every attempt's end, as the cluster heard it: endpoint key and outcome. */
  readonly attempts: { endpoint: string; outcome: Outcome }[];
  /** Starts an RPC on `path` with `body`; the client half-closes at once unless `open` (then the test sends and ends). */
  call(path: string, options?: { headers?: HeaderMap; open?: boolean; body?: Buffer; limits?: BridgeLimits }): Call;
  close(): void;
}

/** `config` is the `clusters` and `routes` part of a Switchyard config, as in a config file. */
export function dataPath(config: { clusters: unknown[]; routes: unknown[] }): DataPath {
  const parsed = configSchema.parse({ listeners: [{ name: 'test', port: 0, plaintext: true }], ...config });
  const pools = new FakePools();
  const attempts: DataPath['attempts'] = [];
  const clusters = new Map<string, Cluster>();
  for (const clusterConfig of parsed.clusters) {
    const cluster = new Cluster({
      config: clusterConfig,
      source: createDiscoverySource(clusterConfig),
      createPool: pools.create,
      // Round robin starts at the first endpoint, so tests know where each attempt goes.
      environment: { now: () => performance.now(), random: () => 0 },
      onAttemptEnd: (endpoint, _latency, outcome) => attempts.push({ endpoint: endpoint.key, outcome }),
    });
    cluster.start();
    clusters.set(clusterConfig.name, cluster);
  }
  const routes = new RouteTable(parsed.routes);
  return {
    pools,
    clusters,
    attempts,
    call(path, options = {}) {
      const downstream = new FakeDownstream();
      const headers: HeaderMap = { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...options.headers };
      let finish!: (record: RpcRecord) => void;
      const finished = new Promise<RpcRecord>((resolve) => { finish = resolve; });
      const record = newRecord(path, () => finish(record));
      const route = routes.match(path, headers);
      if (!route || route.action.kind !== 'cluster') throw new Error(`the test config routes nothing to a cluster for ${path}`);
      record.route = route.name;
      record.cluster = route.action.cluster;
      // A request with no body ends before the RPC path sees the stream, as a client's half-close often does.
      if (!options.open && !options.body) downstream.endRequest();
      forwardRpc(downstream, headers, route, clusters.get(route.action.cluster)!, record, options.limits);
      if (options.body) {
        downstream.send(options.body);
        if (!options.open) downstream.endRequest();
      }
      return { downstream, record, finished };
    },
    close() {
      for (const cluster of clusters.values()) cluster.close();
    },
  };
}

function newRecord(path: string, finish: () => void): RpcRecord {
  return newRpcRecord(path, 'test', 'test', 'grpc', finish);
}

/** A gRPC message frame (5-byte prefix) around `payload`. */
export function grpcMessage(payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}
