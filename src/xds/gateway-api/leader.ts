/**
 * Leader election over a coordination.k8s.io/v1 Lease, as client-go's
 * leaderelection package does it: a replica holds the Lease while it renews
 * it; another takes it over once `renewTime + leaseDurationSeconds` has
 * passed. Writes go through the Lease's resourceVersion, so two replicas
 * racing for it cannot both win. Only the leader writes status; every replica
 * serves xDS.
 */
import type { CoordinationV1Api, KubeConfig, V1Lease } from '@kubernetes/client-node';

export interface LeaseElectorOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly name: string;
  /** This replica, e.g. `<hostname>/<pid>`. */
  readonly identity: string;
  /** Default 15 s. */
  readonly leaseDurationMs?: number;
  /** How often the holder renews and the others look. Default 5 s. */
  readonly retryMs?: number;
  readonly onChange?: (leader: boolean) => void;
  readonly onError?: (error: Error) => void;
}

export class LeaseElector {
  readonly #options: LeaseElectorOptions;
  #api: CoordinationV1Api | undefined;
  #leader = false;
  /** performance.now() of the last successful renewal. */
  #renewedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: LeaseElectorOptions) {
    this.#options = options;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  async start(): Promise<void> {
    const k8s = await import('@kubernetes/client-node');
    this.#api = this.#options.kubeConfig.makeApiClient(k8s.CoordinationV1Api);
    await this.#tick();
  }

  /** Stops renewing; a leader gives the Lease up so another replica need not wait for it to expire. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    if (this.#leader && this.#api) {
      try {
        const lease = await this.#api.readNamespacedLease({ namespace: this.#options.namespace, name: this.#options.name });
        if (lease.spec?.holderIdentity === this.#options.identity) {
          await this.#api.replaceNamespacedLease({ namespace: this.#options.namespace, name: this.#options.name, body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } } });
        }
      } catch {
        // It expires by itself.
      }
    }
    this.#set(false);
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#tryAcquireOrRenew();
    } catch (error) {
      this.#options.onError?.(new Error(`leader election (Lease ${this.#options.namespace}/${this.#options.name}): ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
      if (this.#leader && performance.now() - this.#renewedAt > this.#durationMs()) this.#set(false);
    }
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#tick(), this.#options.retryMs ?? 5_000);
    this.#timer.unref();
  }

  async #tryAcquireOrRenew(): Promise<void> {
    const api = this.#api!;
    const { namespace, name, identity } = this.#options;
    const k8s = await import('@kubernetes/client-node');
    const now = new k8s.V1MicroTime(Date.now());
    const durationSeconds = Math.ceil(this.#durationMs() / 1000);
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ namespace, name });
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
      await api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } } });
      this.#won();
      return;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewedMs = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = holder === '' || renewedMs + (spec.leaseDurationSeconds ?? durationSeconds) * 1000 < Date.now();
    if (holder !== identity && !expired) {
      this.#set(false);
      return;
    }
    const taking = holder !== identity;
    try {
      await api.replaceNamespacedLease({
        namespace, name,
        body: {
          ...lease,
          spec: {
            ...spec,
            holderIdentity: identity,
            leaseDurationSeconds: durationSeconds,
            renewTime: now,
            ...(taking && { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
          },
        },
      });
    } catch (error) {
      // Someone else wrote it first.
      if (statusOf(error) === 409) {
        this.#set(false);
        return;
      }
      throw error;
    }
    this.#won();
  }

  #won(): void {
    this.#renewedAt = performance.now();
    this.#set(true);
  }

  #set(leader: boolean): void {
    if (this.#leader === leader) return;
    this.#leader = leader;
    this.#options.onChange?.(leader);
  }

  #durationMs(): number {
    return this.#options.leaseDurationMs ?? 15_000;
  }
}

/** The HTTP status of a client-node ApiException. */
export function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}
