import { isIP } from 'node:net';
import type { DiscoveryV1Api, KubeConfig, ListWatch, V1EndpointConditions, V1EndpointSlice, V1EndpointSliceList, Watch } from '@kubernetes/client-node';
import { endpointKey, type DiscoveryListener, type DiscoverySource, type EndpointAddress } from './source.ts';

type KubernetesClient = typeof import('@kubernetes/client-node');
let clientModule: Promise<KubernetesClient> | undefined;
/** The client library takes about half a second to import, so only a process with a Kubernetes cluster pays for it. */
function loadClient(): Promise<KubernetesClient> {
  return (clientModule ??= import('@kubernetes/client-node'));
}

/** The label the EndpointSlice controller puts on every slice of a Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export type EndpointHealthState = NonNullable<EndpointAddress['health']>;

export interface KubernetesSourceOptions {
  readonly namespace: string;
  /** The Service whose EndpointSlices are watched. */
  readonly service: string;
  /** A Service port name (`grpc`), looked up in each slice's ports, or the endpoints' port number. */
  readonly port: string | number;
  /** How to reach the API server. Default: `kubeconfigPath`, else KubeConfig.loadFromDefault() (KUBECONFIG, ~/.kube/config, in-cluster). */
  readonly kubeConfig?: KubeConfig;
  /** A kubeconfig file, used when `kubeConfig` is not given. */
  readonly kubeconfigPath?: string;
  /** Restart delays after a failed list or watch: doubling from initialMs to maxMs, each jittered to 50–100%. Default 500 ms to 30 s. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Slice events within this window become one `reset`. Default 20 ms. */
  readonly coalesceMs?: number;
  /** Randomness for the jitter, [0, 1). Default Math.random. */
  readonly random?: () => number;
}

/**
 * How an endpoint's conditions (discovery.k8s.io/v1) become its health, or
 * undefined to leave it out. The API says an unset `ready` means ready, an
 * unset `serving` means "same as ready" and an unset `terminating` means not
 * terminating.
 *
 * - not terminating and ready → `healthy`
 * - terminating and still serving → `draining`: it finishes its RPCs and
 *   takes no new ones. A terminating endpoint is never `healthy`, even when a
 *   Service with publishNotReadyAddresses reports it `ready`.
 * - anything else (not ready, or terminating and no longer serving) → left out.
 */
export function endpointHealth(conditions: V1EndpointConditions | null | undefined): EndpointHealthState | undefined {
  const ready = conditions?.ready ?? true;
  const serving = conditions?.serving ?? ready;
  const terminating = conditions?.terminating ?? false;
  if (terminating) return serving ? 'draining' : undefined;
  return ready ? 'healthy' : undefined;
}

/**
 * The port of `slice`'s endpoints for the configured `port`: by name, the
 * TCP port of that name; by number, that number if the slice lists it (or
 * lists a port without a number, which the API defines as "all ports").
 * Undefined when the slice does not carry it: its endpoints are left out.
 */
export function slicePort(slice: V1EndpointSlice, port: string | number): number | undefined {
  for (const entry of slice.ports ?? []) {
    if ((entry.protocol ?? 'TCP') !== 'TCP') continue;
    const number = entry.port ?? undefined;
    if (typeof port === 'string') {
      if ((entry.name ?? '') === port && number !== undefined && number >= 1 && number <= 65535) return number;
    } else if (number === port || number === undefined) {
      return port;
    }
  }
  return undefined;
}

const FAMILY: Readonly<Record<string, number>> = { IPv4: 4, IPv6: 6 };

/**
 * The endpoint set of a Service from all of its slices: every address of
 * every endpoint that can serve, on the slice's port, weight 1, with its zone
 * and health. FQDN slices are skipped, and so is an address that is not an IP
 * of the slice's `addressType`. An address found in two slices (an endpoint
 * moving between slices during a rollout) is kept once, healthy over
 * draining. Sorted, IPv4 first, so equal sets compare equal.
 */
export function endpointsFromSlices(slices: Iterable<V1EndpointSlice>, port: string | number): EndpointAddress[] {
  const byKey = new Map<string, EndpointAddress>();
  for (const slice of slices) {
    const family = FAMILY[slice.addressType];
    if (family === undefined) continue;
    const portNumber = slicePort(slice, port);
    if (portNumber === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const health = endpointHealth(endpoint.conditions);
      if (health === undefined) continue;
      for (const host of endpoint.addresses ?? []) {
        if (isIP(host) !== family) continue;
        const address: EndpointAddress = { host, port: portNumber, weight: 1, health, ...(endpoint.zone ? { zone: endpoint.zone } : {}) };
        const key = endpointKey(address);
        const previous = byKey.get(key);
        if (previous === undefined || (previous.health === 'draining' && health === 'healthy')) byKey.set(key, address);
      }
    }
  }
  return [...byKey.values()].sort(compareEndpoints);
}

function compareEndpoints(a: EndpointAddress, b: EndpointAddress): number {
  const family = isIP(a.host) - isIP(b.host);
  if (family !== 0) return family;
  const host = a.host.localeCompare(b.host, 'en', { numeric: true });
  return host !== 0 ? host : a.port - b.port;
}

/**
 * Endpoints from the EndpointSlices of one Kubernetes Service, watched
 * through @kubernetes/client-node's ListWatch informer:
 *
 * - List, then watch from the list's resourceVersion, with
 *   `allowWatchBookmarks=true` (which the informer does not ask for itself),
 *   so quiet watches still advance their resourceVersion and a reconnect
 *   resumes from it without a new list.
 * - `410 Gone` (an HTTP answer to a watch, or an ERROR event mid-stream):
 *   the informer lists afresh, and the set is replaced in one `reset`.
 * - A watch the server ends cleanly is resumed by the informer from the last
 *   resourceVersion (after its own delay if it keeps ending without events;
 *   that delay is scaled to `backoff` and jittered here).
 * - Any other failure (API server unreachable, 403, a broken connection)
 *   stops the informer: the source emits `error` (the cluster keeps its last
 *   good set) and restarts it after a jittered exponential backoff, resuming
 *   from the last resourceVersion, so changes made meanwhile arrive as events
 *   (or, if the server no longer has them, through the 410 path).
 * - `reset` is emitted once per burst of slice events (`coalesceMs`), only
 *   after the first list, always computed from the informer's complete
 *   cache, and only when the set changed. A Service without slices is an
 *   empty set.
 *
 * refresh() does nothing: the watch pushes every change. Timers are unref'd;
 * close() stops the watch, and nothing is emitted after it.
 */
export class KubernetesEndpointSliceSource implements DiscoverySource {
  readonly #options: KubernetesSourceOptions;
  readonly #path: string;
  readonly #labelSelector: string;
  readonly #backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly #coalesceMs: number;
  readonly #random: () => number;
  /** Errors thrown by a list (the informer reports list and watch failures alike). */
  readonly #listErrors = new WeakSet<object>();
  readonly #sleeps = new Set<{ readonly timer: NodeJS.Timeout; readonly resolve: () => void }>();
  #listener: DiscoveryListener | undefined;
  #informer: ListWatch<V1EndpointSlice> | undefined;
  #closed = false;
  /** A list has been applied to the informer's cache: its contents are a complete set. */
  #synced = false;
  /** Consecutive failures, for the backoff; reset when a watch connects. */
  #failures = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #emitTimer: NodeJS.Timeout | undefined;
  /** Identity of the last emitted set; undefined until the first reset. */
  #emitted: string | undefined;

  constructor(options: KubernetesSourceOptions) {
    this.#options = options;
    this.#path = `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/endpointslices`;
    this.#labelSelector = `${SERVICE_NAME_LABEL}=${options.service}`;
    this.#backoff = options.backoff ?? { initialMs: 500, maxMs: 30_000 };
    this.#coalesceMs = options.coalesceMs ?? 20;
    this.#random = options.random ?? Math.random;
  }

  /** `namespace/service`, for messages. */
  get target(): string {
    return `${this.#options.namespace}/${this.#options.service}`;
  }

  /** The resourceVersion the next watch would resume from; '' before the first list and after a 410. */
  get resourceVersion(): string {
    return this.#informer?.latestResourceVersion() ?? '';
  }

  start(listener: DiscoveryListener): void {
    if (this.#listener) throw new Error('KubernetesEndpointSliceSource.start() called twice');
    this.#listener = listener;
    if (!this.#closed) void this.#begin();
  }

  refresh(): void {}

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#emitTimer);
    for (const sleep of this.#sleeps) {
      clearTimeout(sleep.timer);
      sleep.resolve();
    }
    this.#sleeps.clear();
    this.#informer?.stop().catch(() => {});
  }

  async #begin(): Promise<void> {
    let k8s: KubernetesClient;
    try {
      k8s = await loadClient();
    } catch (error) {
      this.#emitError(error, 'cannot load @kubernetes/client-node');
      return;
    }
    if (this.#closed) return;
    let api: DiscoveryV1Api;
    let watch: Watch;
    try {
      const kc = this.#options.kubeConfig ?? new k8s.KubeConfig();
      if (!this.#options.kubeConfig) {
        if (this.#options.kubeconfigPath !== undefined) kc.loadFromFile(this.#options.kubeconfigPath);
        else kc.loadFromDefault();
      }
      api = kc.makeApiClient(k8s.DiscoveryV1Api);
      watch = this.#bookmarkingWatch(new k8s.Watch(kc));
    } catch (error) {
      // A kubeconfig can be fixed (or mounted) while we wait.
      this.#onError(error, 'cannot load the kubeconfig');
      if (!this.#closed) this.#restartTimer = this.#later(() => void this.#begin());
      return;
    }
    const informer = new k8s.ListWatch<V1EndpointSlice>(this.#path, watch, () => this.#list(api), false, this.#labelSelector, undefined, {
      delayFn: (ms) => this.#sleep(this.#informerDelay(ms)),
    });
    const changed = () => this.#scheduleEmit();
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.on('error', (error: unknown) => {
      const listed = typeof error === 'object' && error !== null && this.#listErrors.has(error);
      this.#onError(error, listed ? 'list failed' : 'watch failed');
    });
    this.#informer = informer;
    this.#runInformer();
  }

  #runInformer(): void {
    this.#informer?.start().catch((error: unknown) => this.#onError(error, 'watch failed'));
  }

  async #list(api: DiscoveryV1Api): Promise<V1EndpointSliceList> {
    let list: V1EndpointSliceList;
    try {
      list = await api.listNamespacedEndpointSlice({ namespace: this.#options.namespace, labelSelector: this.#labelSelector });
    } catch (error) {
      if (typeof error === 'object' && error !== null) this.#listErrors.add(error);
      throw error;
    }
    // The informer applies the list to its cache before this timer can fire, and in one go.
    this.#synced = true;
    this.#scheduleEmit();
    return list;
  }

  /**
   * The library's Watch, asking for bookmarks; noting when a watch connects
   * (which ends the backoff); and turning a throw before the request (an
   * exec credential plugin failing, say) into the `done` call the informer
   * expects, since it does not catch it on reconnects.
   */
  #bookmarkingWatch(inner: Watch): Watch {
    const wrapper: Pick<Watch, 'watch'> = {
      watch: async (path, query, callback, done) => {
        if (this.#closed) return new AbortController();
        let ended = false;
        const onDone = (error: unknown) => {
          ended = true;
          done(error);
        };
        try {
          const controller = await inner.watch(path, { ...query, allowWatchBookmarks: true }, callback, onDone);
          if (this.#closed) controller.abort();
          else if (!ended) this.#failures = 0;
          return controller;
        } catch (error) {
          if (!ended) onDone(error);
          return new AbortController();
        }
      },
    };
    return wrapper as Watch;
  }

  #onError(error: unknown, what: string): void {
    if (this.#closed) return;
    this.#emitError(error, what);
    if (this.#restartTimer !== undefined || !this.#informer) return;
    this.#restartTimer = this.#later(() => this.#runInformer());
  }

  /** Runs `action` after the next backoff delay. */
  #later(action: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (!this.#closed) action();
    }, this.#backoffDelay(this.#failures++));
    timer.unref();
    return timer;
  }

  #emitError(error: unknown, what: string): void {
    if (this.#closed) return;
    const message = `Kubernetes EndpointSlices of ${this.target}: ${what} (${describeError(error)}); keeping the last good endpoints`;
    this.#listener?.({ type: 'error', error: new Error(message, { cause: error }) });
  }

  /** Doubling from initialMs, capped at maxMs, jittered to 50–100% so many proxies do not retry in step. */
  #backoffDelay(step: number): number {
    const ceiling = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** Math.min(step, 30));
    return ceiling / 2 + (this.#random() * ceiling) / 2;
  }

  /** The informer's own reconnect delay (1 s doubling to 30 s) mapped onto `backoff`. */
  #informerDelay(ms: number): number {
    return this.#backoffDelay(Math.max(0, Math.round(Math.log2(ms / 1000))));
  }

  #sleep(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.#sleeps.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      entry.timer.unref();
      this.#sleeps.add(entry);
    });
  }

  #scheduleEmit(): void {
    if (this.#closed || !this.#synced || this.#emitTimer !== undefined) return;
    this.#emitTimer = setTimeout(() => {
      this.#emitTimer = undefined;
      this.#emit();
    }, this.#coalesceMs);
    this.#emitTimer.unref();
  }

  #emit(): void {
    if (this.#closed || !this.#informer) return;
    const slices = this.#informer.list().filter((slice) => slice.metadata?.labels?.[SERVICE_NAME_LABEL] === this.#options.service);
    const endpoints = endpointsFromSlices(slices, this.#options.port);
    const identity = endpoints.map((e) => `${endpointKey(e)} ${e.health} ${e.zone ?? ''}`).join(',');
    if (identity === this.#emitted) return;
    this.#emitted = identity;
    this.#listener?.({ type: 'reset', endpoints });
  }
}

/** One line: `HTTP 403: endpointslices is forbidden…`, `connect ECONNREFUSED 127.0.0.1:6443`, `HTTP 410 Gone`. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const failure = error as Error & { code?: unknown; statusCode?: unknown; body?: unknown; cause?: unknown };
  // ApiException (a list): numeric code, the API server's Status in the body.
  if (typeof failure.code === 'number') {
    const body = typeof failure.body === 'string' ? safeJson(failure.body) : failure.body;
    const message = (body as { message?: unknown } | undefined)?.message;
    return `HTTP ${failure.code}${typeof message === 'string' ? `: ${message}` : ''}`;
  }
  // Watch: statusCode and the status text.
  if (typeof failure.statusCode === 'number') return `HTTP ${failure.statusCode} ${failure.message}`;
  // fetch failed: the reason is in the cause.
  if (failure.cause instanceof Error) return `${failure.message}: ${failure.cause.message}`;
  return failure.message;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
