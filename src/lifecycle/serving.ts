/**
 * What serves RPCs at one moment: the route table, the clusters, the
 * authorizer, tracing and the listeners' settings, built together from one
 * config. Immutable: a reload builds the next one and swaps it in whole, and
 * the RPC handler reads it once per RPC, so an RPC never sees half a reload
 * (new routes naming clusters the old set does not have, say).
 */
import type { Cluster } from '../cluster/cluster.ts';
import type { SwitchyardConfig } from '../config/schema.ts';
import type { Serving } from '../proxy/rpc-handler.ts';
import { RouteTable } from '../router/route-table.ts';
import { Authorizer } from '../security/authorization.ts';

export type { Serving };

export function servingState(config: SwitchyardConfig, clusters: ReadonlyMap<string, Cluster>): Serving {
  return Object.freeze({
    routes: new RouteTable(config.routes),
    clusters,
    authorizer: new Authorizer(config.authorization),
    tracing: config.tracing,
    listeners: new Map(config.listeners.map((listener) => [listener.name, listener])),
  });
}
