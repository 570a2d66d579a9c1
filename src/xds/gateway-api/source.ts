/**
 * Watches the Gateway API objects and what they name, with
 * @kubernetes/client-node ListWatch informers (one per resource type, every
 * namespace): GatewayClasses, Gateways, GRPCRoutes, HTTPRoutes,
 * ReferenceGrants, Services and Namespaces. EndpointSlices are watched per
 * backend Service by the EndpointSlice source the proxies use
 * (src/discovery/kubernetes.ts).
 *
 * A failed list or watch restarts that informer after a jittered exponential
 * backoff; the others keep going, and the last objects seen are kept. Events
 * within `coalesceMs` become one change; changes are reported only once every
 * informer has listed.
 */
import type { KubeConfig, KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import type { GatewayApiObjects } from './model.ts';

type KubernetesClient = typeof import('@kubernetes/client-node');

interface ResourceType {
  readonly key: keyof GatewayApiObjects;
  readonly path: string;
  readonly list: (k8s: KubernetesClient, kc: KubeConfig) => Promise<{ items: KubernetesObject[]; metadata?: { resourceVersion?: string } }>;
}

const GATEWAY_API = (key: keyof GatewayApiObjects, plural: string, version = 'v1'): ResourceType => ({
  key,
  path: `/apis/gateway.networking.k8s.io/${version}/${plural}`,
  list: async (k8s, kc) => kc.makeApiClient(k8s.CustomObjectsApi).listClusterCustomObject({ group: 'gateway.networking.k8s.io', version, plural }),
});

/** Every type the translation reads. ReferenceGrant is read as v1beta1, which every Gateway API release since v0.6 serves. */
export const WATCHED: readonly ResourceType[] = [
  GATEWAY_API('gatewayClasses', 'gatewayclasses'),
  GATEWAY_API('gateways', 'gateways'),
  GATEWAY_API('grpcRoutes', 'grpcroutes'),
  GATEWAY_API('httpRoutes', 'httproutes'),
  GATEWAY_API('referenceGrants', 'referencegrants', 'v1beta1'),
  { key: 'services', path: '/api/v1/services', list: async (k8s, kc) => kc.makeApiClient(k8s.CoreV1Api).listServiceForAllNamespaces() as never },
  { key: 'namespaces', path: '/api/v1/namespaces', list: async (k8s, kc) => kc.makeApiClient(k8s.CoreV1Api).listNamespace() as never },
];

export interface GatewayApiSourceOptions {
  readonly kubeConfig: KubeConfig;
  /** Default 20 ms. */
  readonly coalesceMs?: number;
  /** Default 500 ms to 30 s. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  readonly onError?: (error: Error) => void;
  readonly random?: () => number;
}

export class GatewayApiSource {
  readonly #options: GatewayApiSourceOptions;
  readonly #informers = new Map<keyof GatewayApiObjects, ListWatch<KubernetesObject>>();
  readonly #listed = new Set<keyof GatewayApiObjects>();
  readonly #failures = new Map<keyof GatewayApiObjects, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #restarting = new Set<keyof GatewayApiObjects>();
  #onChange: (() => void) | undefined;
  #emitTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: GatewayApiSourceOptions) {
    this.#options = options;
  }

  /** Every informer has listed once: snapshot() is complete. */
  get synced(): boolean {
    return this.#listed.size === WATCHED.length;
  }

  /** `onChange` runs after each coalesced burst of changes, from the first complete set on. */
  async start(onChange: () => void): Promise<void> {
    this.#onChange = onChange;
    const k8s = await import('@kubernetes/client-node');
    if (this.#closed) return;
    for (const type of WATCHED) this.#startInformer(k8s, type);
  }

  /** The objects as the informers hold them now (empty lists before they have listed). */
  snapshot(): GatewayApiObjects {
    const of = (key: keyof GatewayApiObjects) => (this.#informers.get(key)?.list() ?? []) as never[];
    return {
      gatewayClasses: of('gatewayClasses'),
      gateways: of('gateways'),
      grpcRoutes: of('grpcRoutes'),
      httpRoutes: of('httpRoutes'),
      referenceGrants: of('referenceGrants'),
      services: of('services'),
      namespaces: of('namespaces'),
    };
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#emitTimer);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const informer of this.#informers.values()) informer.stop().catch(() => {});
  }

  #startInformer(k8s: KubernetesClient, type: ResourceType): void {
    const kc = this.#options.kubeConfig;
    const watch = new k8s.Watch(kc);
    const informer = new k8s.ListWatch<KubernetesObject>(type.path, this.#resettingWatch(watch, type), async () => {
      const list = await type.list(k8s, kc);
      this.#listed.add(type.key);
      this.#scheduleEmit();
      return list as never;
    }, false, undefined, undefined, { delayFn: (ms) => this.#sleep(Math.min(ms, this.#backoff().maxMs)) });
    const changed = () => this.#scheduleEmit();
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.on('error', (error: unknown) => this.#restart(type, informer, error));
    this.#informers.set(type.key, informer);
    informer.start().catch((error: unknown) => this.#restart(type, informer, error));
  }

  /** A watch that connected ends that type's backoff. */
  #resettingWatch(inner: Watch, type: ResourceType): Watch {
    const wrapper: Pick<Watch, 'watch'> = {
      watch: async (path, query, callback, done) => {
        if (this.#closed) return new AbortController();
        let ended = false;
        try {
          const controller = await inner.watch(path, { ...query, allowWatchBookmarks: true }, callback, (error) => {
            ended = true;
            done(error);
          });
          if (this.#closed) controller.abort();
          else if (!ended) this.#failures.set(type.key, 0);
          return controller;
        } catch (error) {
          if (!ended) done(error);
          return new AbortController();
        }
      },
    };
    return wrapper as Watch;
  }

  #restart(type: ResourceType, informer: ListWatch<KubernetesObject>, error: unknown): void {
    // The informer may report one failure both as an 'error' event and as start()'s rejection.
    if (this.#closed || this.#restarting.has(type.key)) return;
    this.#restarting.add(type.key);
    const failures = this.#failures.get(type.key) ?? 0;
    this.#failures.set(type.key, failures + 1);
    this.#options.onError?.(new Error(`Gateway API: watching ${type.path} failed (${error instanceof Error ? error.message : String(error)}); keeping the last objects and retrying`, { cause: error }));
    const { initialMs, maxMs } = this.#backoff();
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 30));
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#restarting.delete(type.key);
      if (!this.#closed) informer.start().catch((next: unknown) => this.#restart(type, informer, next));
    }, ceiling / 2 + ((this.#options.random ?? Math.random)() * ceiling) / 2);
    timer.unref();
    this.#timers.add(timer);
  }

  #backoff(): { initialMs: number; maxMs: number } {
    return this.#options.backoff ?? { initialMs: 500, maxMs: 30_000 };
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      timer.unref();
      this.#timers.add(timer);
    });
  }

  #scheduleEmit(): void {
    if (this.#closed || !this.synced || this.#emitTimer !== undefined) return;
    this.#emitTimer = setTimeout(() => {
      this.#emitTimer = undefined;
      if (!this.#closed) this.#onChange?.();
    }, this.#options.coalesceMs ?? 20);
    this.#emitTimer.unref();
  }
}
