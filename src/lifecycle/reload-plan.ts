/**
 * What a config reload changes, worked out before anything is touched: which
 * clusters and listeners stay as they are, which are replaced, added or
 * removed. Pure: Switchyard.reload() carries the plan out.
 *
 * "Unchanged" means the same config and the same certificate bytes, so a
 * rotated certificate at the same path counts as a change.
 */
import type { ClusterTlsFiles, ConfigSecrets, ListenerTlsFiles } from '../config/config-files.ts';
import type { ClusterConfig, ListenerConfig, SwitchyardConfig } from '../config/schema.ts';

export interface ConfigState {
  readonly config: SwitchyardConfig;
  readonly secrets: ConfigSecrets;
}

/** Names, by what the reload did to them. */
export interface ChangeSummary {
  readonly added: string[];
  readonly changed: string[];
  readonly removed: string[];
  readonly unchanged: string[];
}

export interface ReloadSummary {
  readonly routes: number;
  readonly clusters: ChangeSummary;
  /** `failed`: listeners that had to be bound again and could not be (they are not serving). */
  readonly listeners: ChangeSummary & { readonly failed: string[] };
  /** The readiness endpoint: kept, started, stopped, or moved to a new address. */
  readonly health: 'unchanged' | 'added' | 'removed' | 'changed';
}

export interface ReloadPlan {
  readonly clusters: {
    /** Kept as they are: same objects, connection pools and state. */
    readonly keep: readonly string[];
    /** New objects, for new names and for changed ones. */
    readonly create: readonly ClusterConfig[];
    /** Old objects to close once their in-flight RPCs are done: removed or replaced. */
    readonly retire: readonly string[];
  };
  readonly listeners: {
    readonly keep: readonly string[];
    /** Changed, but applied to the running listener (same address, port and kind). */
    readonly update: readonly ListenerConfig[];
    /** Bound anew: new names, and changes that need a new socket. */
    readonly bind: readonly ListenerConfig[];
    /** Old listeners to drain: removed, or replaced by one in `bind`. */
    readonly retire: readonly string[];
  };
  readonly summary: ReloadSummary;
}

export function planReload(current: ConfigState, next: ConfigState): ReloadPlan {
  const clusters = { keep: [] as string[], create: [] as ClusterConfig[], retire: [] as string[] };
  const clusterSummary: ChangeSummary = { added: [], changed: [], removed: [], unchanged: [] };
  const oldClusters = new Map(current.config.clusters.map((c) => [c.name, c]));
  for (const cluster of next.config.clusters) {
    const old = oldClusters.get(cluster.name);
    if (old && sameCluster(old, current.secrets.clusters.get(old.name), cluster, next.secrets.clusters.get(cluster.name))) {
      clusters.keep.push(cluster.name);
      clusterSummary.unchanged.push(cluster.name);
      continue;
    }
    clusters.create.push(cluster);
    if (old) {
      clusters.retire.push(old.name);
      clusterSummary.changed.push(cluster.name);
    } else {
      clusterSummary.added.push(cluster.name);
    }
  }
  const nextClusterNames = new Set(next.config.clusters.map((c) => c.name));
  for (const name of oldClusters.keys()) {
    if (nextClusterNames.has(name)) continue;
    clusters.retire.push(name);
    clusterSummary.removed.push(name);
  }

  const listeners = { keep: [] as string[], update: [] as ListenerConfig[], bind: [] as ListenerConfig[], retire: [] as string[] };
  const listenerSummary = { added: [] as string[], changed: [] as string[], removed: [] as string[], unchanged: [] as string[], failed: [] as string[] };
  const oldListeners = new Map(current.config.listeners.map((l) => [l.name, l]));
  for (const listener of next.config.listeners) {
    const old = oldListeners.get(listener.name);
    const oldTls = old && current.secrets.listeners.get(old.name);
    const tls = next.secrets.listeners.get(listener.name);
    if (old && sameListener(old, oldTls, listener, tls)) {
      listeners.keep.push(listener.name);
      listenerSummary.unchanged.push(listener.name);
    } else if (old && canUpdateInPlace(old, oldTls, listener, tls)) {
      listeners.update.push(listener);
      listenerSummary.changed.push(listener.name);
    } else {
      listeners.bind.push(listener);
      if (old) {
        listeners.retire.push(old.name);
        listenerSummary.changed.push(listener.name);
      } else {
        listenerSummary.added.push(listener.name);
      }
    }
  }
  const nextListenerNames = new Set(next.config.listeners.map((l) => l.name));
  for (const name of oldListeners.keys()) {
    if (nextListenerNames.has(name)) continue;
    listeners.retire.push(name);
    listenerSummary.removed.push(name);
  }

  const before = current.config.health;
  const after = next.config.health;
  const health = !before && !after ? 'unchanged' : !before ? 'added' : !after ? 'removed'
    : before.address === after.address && before.port === after.port ? 'unchanged' : 'changed';

  return {
    clusters,
    listeners,
    summary: { routes: next.config.routes.length, clusters: clusterSummary, listeners: listenerSummary, health },
  };
}

export function sameCluster(a: ClusterConfig, aTls: ClusterTlsFiles | undefined, b: ClusterConfig, bTls: ClusterTlsFiles | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b) && sameBuffers(aTls?.ca, bTls?.ca) && sameBuffers(aTls?.cert, bTls?.cert) && sameBuffers(aTls?.key, bTls?.key);
}

export function sameListener(a: ListenerConfig, aTls: ListenerTlsFiles | undefined, b: ListenerConfig, bTls: ListenerTlsFiles | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b) && sameBuffers(aTls?.cert, bTls?.cert) && sameBuffers(aTls?.key, bTls?.key) && sameBuffers(aTls?.clientCa, bTls?.clientCa);
}

/**
 * A running listener can take the change without a new socket when it keeps
 * its address, port and kind (TLS or h2c): certificates, HTTP/2 settings,
 * abuse limits and connection age can all change under it (settings and limits
 * apply to the connections opened after the reload).
 */
export function canUpdateInPlace(a: ListenerConfig, aTls: ListenerTlsFiles | undefined, b: ListenerConfig, bTls: ListenerTlsFiles | undefined): boolean {
  return a.name === b.name && a.address === b.address && a.port === b.port && a.plaintext === b.plaintext && (aTls === undefined) === (bTls === undefined)
    // Asking for client certificates, and the handshake timeout, are server options, not part of the secure context.
    && a.tls?.client_certificates === b.tls?.client_certificates && a.tls?.handshake_timeout === b.tls?.handshake_timeout;
}

function sameBuffers(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}
