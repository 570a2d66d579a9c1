/**
 * Every open WebSocket session, by listener, client address and endpoint:
 * the caps per listener and per address, the drain of one listener, and the
 * count of open tunnels per endpoint that least_connections reads.
 *
 * That count lives in the endpoint objects (`activeRequests`, which the
 * cluster's policy sees), and those objects change: a reload that changes a
 * cluster builds new ones, and an endpoint that leaves and comes back is a new
 * one. Sessions outlive both, so the registry keeps, per cluster name and
 * endpoint address, the object its sessions are counted on, and moves their
 * count to the current object before each placement (adopt()): a reload never
 * makes an endpoint holding 20 sessions look empty.
 */
import type { Cluster, ClusterEndpoint } from '../cluster/cluster.ts';

/** What the registry needs of a session. */
export interface RegisteredSession {
  /** Sends close 1001 both ways at frame boundaries, then closes (drain). */
  goAway(): void;
  /** The route's name, and the bytes passed so far each way (metrics read them at scrape time). */
  readonly route: string;
  readonly bytesFromClient: number;
  readonly bytesFromBackend: number;
}

/** A place held for a session from admission until it ends (or its upgrade fails). */
export interface Admission {
  readonly listener: ListenerKey;
  readonly ip: string;
  released: boolean;
  /** Its listener began draining while the upgrade was under way: the session is sent away as it opens. */
  goingAway: boolean;
}

/** A listener is known by name and port: a reload may bind a new listener of the same name elsewhere while the old one drains. */
export interface ListenerKey {
  readonly name: string;
  readonly port: number;
}

export interface Caps {
  readonly maxConnections: number | undefined;
  readonly maxConnectionsPerIp: number | undefined;
}

interface Slot {
  /** The endpoint object the sessions' count sits on. */
  endpoint: ClusterEndpoint;
  readonly sessions: Set<RegisteredSession>;
}

export class SessionRegistry {
  /** Admitted sessions (upgrading or open), per listener key. */
  readonly #perListener = new Map<string, number>();
  readonly #perIp = new Map<string, number>();
  readonly #open = new Map<string, Set<RegisteredSession>>();
  /** Admissions not yet released, per listener key (a drain marks those still upgrading). */
  readonly #admitted = new Map<string, Set<Admission>>();
  /** cluster name → endpoint address → its sessions. */
  readonly #slots = new Map<string, Map<string, Slot>>();
  #openCount = 0;

  /** Open sessions (upgraded, not yet ended). */
  get size(): number {
    return this.#openCount;
  }

  /** Holds a place for a new session on `listener` from `ip`, or says which cap is reached. */
  admit(listener: ListenerKey, ip: string, caps: Caps): Admission | 'listener_limit' | 'ip_limit' {
    const key = keyOf(listener);
    const onListener = this.#perListener.get(key) ?? 0;
    if (caps.maxConnections !== undefined && onListener >= caps.maxConnections) return 'listener_limit';
    const ipKey = `${key} ${ip}`;
    const fromIp = this.#perIp.get(ipKey) ?? 0;
    if (caps.maxConnectionsPerIp !== undefined && fromIp >= caps.maxConnectionsPerIp) return 'ip_limit';
    this.#perListener.set(key, onListener + 1);
    this.#perIp.set(ipKey, fromIp + 1);
    const admission: Admission = { listener, ip, released: false, goingAway: false };
    let admitted = this.#admitted.get(key);
    if (!admitted) this.#admitted.set(key, (admitted = new Set()));
    admitted.add(admission);
    return admission;
  }

  /** Gives the place back (the upgrade failed, or the session ended). Idempotent. */
  release(admission: Admission): void {
    if (admission.released) return;
    admission.released = true;
    const key = keyOf(admission.listener);
    decrement(this.#perListener, key);
    decrement(this.#perIp, `${key} ${admission.ip}`);
    const admitted = this.#admitted.get(key);
    admitted?.delete(admission);
    if (admitted?.size === 0) this.#admitted.delete(key);
  }

  /**
   * Moves the counts of `cluster`'s sessions onto its current endpoint objects (see the file comment).
   * Costs a map lookup per endpoint; call it before each placement in the cluster.
   */
  adopt(cluster: Cluster): void {
    const slots = this.#slots.get(cluster.name);
    if (!slots) return;
    for (const [key, endpoint] of cluster.endpoints) {
      const slot = slots.get(key);
      if (!slot || slot.endpoint === endpoint) continue;
      slot.endpoint.activeRequests -= slot.sessions.size;
      endpoint.activeRequests += slot.sessions.size;
      slot.endpoint = endpoint;
    }
  }

  /**
   * A session is open on `endpoint` of the cluster named `cluster`, already counted on that object
   * (pick() or claim()). Sent away at once when its listener began draining during the upgrade.
   */
  opened(session: RegisteredSession, admission: Admission, cluster: string, endpoint: ClusterEndpoint): void {
    const listenerKey = keyOf(admission.listener);
    let open = this.#open.get(listenerKey);
    if (!open) this.#open.set(listenerKey, (open = new Set()));
    open.add(session);
    this.#openCount++;
    let slots = this.#slots.get(cluster);
    if (!slots) this.#slots.set(cluster, (slots = new Map()));
    const slot = slots.get(endpoint.key);
    if (!slot) {
      slots.set(endpoint.key, { endpoint, sessions: new Set([session]) });
    } else {
      slot.sessions.add(session);
      if (slot.endpoint !== endpoint) {
        // Counted on another object of the same endpoint: keep the slot's sessions together.
        endpoint.activeRequests--;
        slot.endpoint.activeRequests++;
      }
    }
    if (admission.goingAway) session.goAway();
  }

  /** The session ended: its count leaves the endpoint, its place the listener. */
  closed(session: RegisteredSession, admission: Admission, cluster: string, endpointKey: string): void {
    const open = this.#open.get(keyOf(admission.listener));
    if (open?.delete(session)) this.#openCount--;
    if (open?.size === 0) this.#open.delete(keyOf(admission.listener));
    const slots = this.#slots.get(cluster);
    const slot = slots?.get(endpointKey);
    if (slot?.sessions.delete(session)) {
      slot.endpoint.activeRequests--;
      if (slot.sessions.size === 0) slots!.delete(endpointKey);
      if (slots!.size === 0) this.#slots.delete(cluster);
    }
    this.release(admission);
  }

  /**
   * Drain of one listener: its open sessions are sent away, and so are those still upgrading, as they
   * open. (New upgrades are the caller's business: a draining proxy refuses them.)
   */
  goAway(listener: ListenerKey): number {
    const key = keyOf(listener);
    for (const admission of this.#admitted.get(key) ?? []) admission.goingAway = true;
    const open = [...(this.#open.get(key) ?? [])];
    for (const session of open) session.goAway();
    return open.length;
  }

  /** Open sessions per endpoint: cluster name → endpoint address → count (metrics, the dashboard). */
  perEndpoint(): Map<string, Map<string, number>> {
    const counts = new Map<string, Map<string, number>>();
    for (const [cluster, slots] of this.#slots) {
      counts.set(cluster, new Map([...slots].map(([key, slot]) => [key, slot.sessions.size])));
    }
    return counts;
  }

  /** Every open session. */
  *openSessions(): Iterable<RegisteredSession> {
    for (const sessions of this.#open.values()) yield* sessions;
  }
}

function keyOf(listener: ListenerKey): string {
  return `${listener.name}:${listener.port}`;
}

function decrement(map: Map<string, number>, key: string): void {
  const value = (map.get(key) ?? 0) - 1;
  if (value <= 0) map.delete(key);
  else map.set(key, value);
}
