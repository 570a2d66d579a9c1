/**
 * Writes the translation's status to the API server: JSON merge patches of
 * the status subresource, only where something changed (conditions keep
 * their lastTransitionTime while their status holds), at most `ratePerSecond`
 * patches a second, and only while this replica is the leader. A route's
 * status.parents keeps the entries of other controllers; that patch carries
 * the route's resourceVersion, so a concurrent writer makes it fail (409) and
 * it is computed again from the newer object.
 */
import type { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { withTransitionTimes } from './conditions.ts';
import { statusOf } from './leader.ts';
import { GATEWAY_GROUP, keyOf, type Condition, type GatewayApiObjects, type GatewayStatus, type RouteParentStatus, type RouteStatus } from './model.ts';
import type { GatewayTranslation, StatusTarget } from './translate.ts';

const PLURAL: Readonly<Record<StatusTarget['kind'], string>> = { GatewayClass: 'gatewayclasses', Gateway: 'gateways', GRPCRoute: 'grpcroutes', HTTPRoute: 'httproutes' };

export interface StatusPatch extends StatusTarget {
  /** The merge patch body: `{ status }`, with metadata.resourceVersion for routes. */
  readonly body: { readonly metadata?: { readonly resourceVersion: string }; readonly status: unknown };
}

/**
 * The patches that bring `current` to what `translation` says, for objects
 * whose status differs. `now` stamps conditions that changed.
 */
export function statusPatches(translation: GatewayTranslation, current: GatewayApiObjects, controllerName: string, now: string): StatusPatch[] {
  const patches: StatusPatch[] = [];
  const classes = new Map(current.gatewayClasses.map((item) => [item.metadata.name, item]));
  for (const wanted of translation.gatewayClasses) {
    const existing = classes.get(wanted.name)?.status?.conditions;
    const conditions = mergeConditions(wanted.conditions, existing, now);
    if (!sameConditions(conditions, existing)) patches.push({ ...wanted, body: { status: { conditions } } });
  }
  const gateways = new Map(current.gateways.map((item) => [keyOf(item.metadata), item]));
  for (const wanted of translation.gateways) {
    const existing = gateways.get(`${wanted.namespace}/${wanted.name}`)?.status;
    const status: GatewayStatus = {
      addresses: wanted.status.addresses,
      conditions: mergeConditions(wanted.status.conditions ?? [], existing?.conditions, now),
      listeners: (wanted.status.listeners ?? []).map((listener) => ({
        ...listener,
        conditions: withTransitionTimes(listener.conditions, existing?.listeners?.find((old) => old.name === listener.name)?.conditions, now),
      })),
    };
    if (JSON.stringify(normalize(status)) !== JSON.stringify(normalize(existing ?? {}))) patches.push({ ...wanted, body: { status } });
  }
  const wantedRoutes = new Map(translation.routes.map((route) => [`${route.kind} ${route.namespace}/${route.name}`, route]));
  const routes = [
    ...current.grpcRoutes.map((route) => ({ kind: 'GRPCRoute' as const, route })),
    ...current.httpRoutes.map((route) => ({ kind: 'HTTPRoute' as const, route })),
  ];
  for (const { kind, route } of routes) {
    const meta = route.metadata;
    const wanted = wantedRoutes.get(`${kind} ${meta.namespace}/${meta.name}`);
    const existing = route.status?.parents ?? [];
    const ours = existing.filter((parent) => parent.controllerName === controllerName);
    if (!wanted && ours.length === 0) continue;
    const others = existing.filter((parent) => parent.controllerName !== controllerName);
    const mine: RouteParentStatus[] = (wanted?.parents ?? []).map((parent) => ({
      ...parent,
      conditions: withTransitionTimes(parent.conditions, ours.find((old) => sameParent(old.parentRef, parent.parentRef))?.conditions, now),
    }));
    const status: RouteStatus = { parents: [...others, ...mine] };
    if (JSON.stringify(normalize(status)) === JSON.stringify(normalize({ parents: existing }))) continue;
    patches.push({ kind, namespace: meta.namespace, name: meta.name, body: { metadata: { resourceVersion: meta.resourceVersion ?? '' }, status } });
  }
  return patches;
}

export interface StatusWriterOptions {
  readonly kubeConfig: KubeConfig;
  /** Default 10 patches a second, in bursts of up to 10. */
  readonly ratePerSecond?: number;
  readonly onError?: (error: Error) => void;
  readonly onWritten?: (patch: StatusPatch) => void;
}

/** Sends patches at a bounded rate; a newer patch for an object replaces one still waiting. */
export class StatusWriter {
  readonly #options: StatusWriterOptions;
  readonly #pending = new Map<string, StatusPatch>();
  #api: CustomObjectsApi | undefined;
  #tokens: number;
  #refilledAt = performance.now();
  #timer: NodeJS.Timeout | undefined;
  #sending = false;
  #closed = false;

  constructor(options: StatusWriterOptions) {
    this.#options = options;
    this.#tokens = this.#rate();
  }

  get pending(): number {
    return this.#pending.size;
  }

  enqueue(patches: readonly StatusPatch[]): void {
    for (const patch of patches) this.#pending.set(`${patch.kind} ${patch.namespace ?? ''}/${patch.name}`, patch);
    void this.#drain();
  }

  /** Drops what is waiting (leadership lost: the new leader computes its own). */
  clear(): void {
    this.#pending.clear();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#pending.clear();
  }

  async #drain(): Promise<void> {
    if (this.#sending || this.#closed) return;
    this.#sending = true;
    try {
      const k8s = await import('@kubernetes/client-node');
      this.#api ??= this.#options.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
      const options = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
      while (this.#pending.size > 0 && !this.#closed) {
        this.#refill();
        if (this.#tokens < 1) {
          clearTimeout(this.#timer);
          this.#timer = setTimeout(() => void this.#drain(), Math.ceil(1000 / this.#rate()));
          this.#timer.unref();
          return;
        }
        this.#tokens -= 1;
        const [key, patch] = this.#pending.entries().next().value as [string, StatusPatch];
        this.#pending.delete(key);
        try {
          await this.#send(patch, options);
          this.#options.onWritten?.(patch);
        } catch (error) {
          // 404: the object is gone. 409: it changed meanwhile; the informer brings the change and a new patch.
          const code = statusOf(error);
          if (code !== 404 && code !== 409) this.#options.onError?.(new Error(`status of ${patch.kind} ${patch.namespace ? `${patch.namespace}/` : ''}${patch.name}: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
        }
      }
    } finally {
      this.#sending = false;
    }
  }

  async #send(patch: StatusPatch, options: unknown): Promise<void> {
    const api = this.#api!;
    const common = { group: GATEWAY_GROUP, version: 'v1', plural: PLURAL[patch.kind], name: patch.name, body: patch.body };
    if (patch.namespace === undefined) await api.patchClusterCustomObjectStatus(common, options as never);
    else await api.patchNamespacedCustomObjectStatus({ ...common, namespace: patch.namespace }, options as never);
  }

  #refill(): void {
    const now = performance.now();
    this.#tokens = Math.min(this.#rate(), this.#tokens + ((now - this.#refilledAt) / 1000) * this.#rate());
    this.#refilledAt = now;
  }

  #rate(): number {
    return this.#options.ratePerSecond ?? 10;
  }
}

function mergeConditions(next: readonly Condition[], previous: readonly Condition[] | undefined, now: string): Condition[] {
  // Conditions of types this controller does not set (another version's, say) are kept.
  const kept = (previous ?? []).filter((old) => !next.some((item) => item.type === old.type));
  return [...withTransitionTimes(next, previous, now), ...kept];
}

function sameConditions(a: readonly Condition[], b: readonly Condition[] | undefined): boolean {
  return JSON.stringify(normalize(a)) === JSON.stringify(normalize(b ?? []));
}

function sameParent(a: RouteParentStatus['parentRef'], b: RouteParentStatus['parentRef']): boolean {
  return a.name === b.name && (a.namespace ?? '') === (b.namespace ?? '') && (a.sectionName ?? '') === (b.sectionName ?? '') && (a.port ?? 0) === (b.port ?? 0)
    && (a.group ?? GATEWAY_GROUP) === (b.group ?? GATEWAY_GROUP) && (a.kind ?? 'Gateway') === (b.kind ?? 'Gateway');
}

/** Key order and Date values made canonical, so equal statuses compare equal as JSON. */
function normalize(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, normalize(v)]));
  }
  return value;
}
