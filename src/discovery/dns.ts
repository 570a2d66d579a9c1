import type { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { dnsModule } from '../builtins.ts';
import type { ClusterConfig } from '../config/schema.ts';
import type { DiscoveryListener, DiscoverySource, DiscoveryUpdate, EndpointAddress } from './source.ts';
import { unbracketHost } from './static.ts';

export type DnsDiscoveryConfig = NonNullable<ClusterConfig['dns']>;
type Family = DnsDiscoveryConfig['families'][number];

export interface DnsSourceOptions {
  /** Shortest gap between the start of one query and a refresh()-triggered next one. Default 1000 ms. */
  readonly minRefreshIntervalMs?: number;
  /** First-try timeout of each DNS query, handed to c-ares. Default 2000 ms. */
  readonly queryTimeoutMs?: number;
  /** Tries per DNS server before a query fails. Default 2. */
  readonly tries?: number;
}

/**
 * c-ares codes for an authoritative "no such records": ENOTFOUND is NXDOMAIN,
 * ENODATA is NOERROR with no answer of that type. Both are facts about the
 * name, so they count as an empty answer, not as a failure. When every family
 * says so the set becomes empty: a headless Service that was deleted, or that
 * has no ready pods, answers exactly this, and keeping its old addresses would
 * send traffic to pods that are gone, or to unrelated pods that have since
 * been given the same IPs. Anything else (ETIMEOUT, ESERVFAIL, EREFUSED,
 * ECONNREFUSED...) says nothing about the name: we keep the last good set.
 */
const AUTHORITATIVE_EMPTY = new Set(['ENOTFOUND', 'ENODATA']);

type FamilyAnswer =
  | { readonly family: Family; readonly addresses: readonly string[] }
  | { readonly family: Family; readonly error: Error & { code?: string } };

const RECORD_TYPE: Record<Family, string> = { ipv4: 'A', ipv6: 'AAAA' };

/**
 * Endpoints from the A and/or AAAA records of one name (a headless Kubernetes
 * Service, typically), all on the configured port with weight 1.
 *
 * - The first resolution always emits a `reset`; later ones only when the
 *   sorted, de-duplicated address set changed.
 * - Re-resolves `refresh_interval` after each query completes (queries never
 *   overlap), and on `refresh()`, at most once per `minRefreshIntervalMs`; a
 *   refresh() while a query is in flight is satisfied by that query.
 * - A failed lookup emits `error` and leaves the last good set in force. If
 *   only some families fail, their last known addresses are kept next to the
 *   fresh ones, and `error` follows the (possible) `reset`.
 * - An IP literal `name` needs no DNS: it is emitted once, like a static endpoint.
 * - Timers are unref'd; after close() in-flight answers are dropped.
 *
 * Throws from the constructor if `servers` holds something other than
 * `ip`, `ip:port` or `[ipv6]:port`.
 */
export class DnsDiscoverySource implements DiscoverySource {
  readonly #name: string;
  readonly #port: number;
  readonly #families: readonly Family[];
  readonly #interval: number;
  readonly #minRefresh: number;
  readonly #resolver: Resolver | undefined;
  readonly #literal: EndpointAddress | undefined;
  /** Per family, the last authoritative answer: lets one failing family keep its addresses. */
  readonly #known = new Map<Family, readonly string[]>();
  #listener: DiscoveryListener | undefined;
  #closed = false;
  #querying = false;
  #lastQueryAt = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #timerDue = Infinity;
  /** Identity of the last emitted set; undefined until the first reset. */
  #emitted: string | undefined;

  constructor(config: DnsDiscoveryConfig, options: DnsSourceOptions = {}) {
    this.#name = unbracketHost(config.name);
    this.#port = config.port;
    this.#families = [...new Set(config.families)];
    this.#interval = config.refresh_interval;
    this.#minRefresh = options.minRefreshIntervalMs ?? 1000;
    if (isIP(this.#name)) {
      this.#literal = { host: this.#name, port: this.#port, weight: 1 };
      return;
    }
    // c-ares defaults (5s timeout, 4 tries, growing) could stall a refresh for most of a minute.
    this.#resolver = new (dnsModule().Resolver)({ timeout: options.queryTimeoutMs ?? 2000, tries: options.tries ?? 2 });
    if (config.servers?.length) {
      try {
        this.#resolver.setServers(config.servers);
      } catch (error) {
        throw new Error(`dns.servers ${JSON.stringify(config.servers)}: ${(error as Error).message}`, { cause: error });
      }
    }
  }

  start(listener: DiscoveryListener): void {
    if (this.#listener) throw new Error('DnsDiscoverySource.start() called twice');
    this.#listener = listener;
    if (this.#closed) return;
    if (this.#literal) listener({ type: 'reset', endpoints: [this.#literal] });
    else void this.#query();
  }

  refresh(): void {
    if (!this.#listener || !this.#resolver || this.#closed || this.#querying) return;
    this.#schedule(this.#lastQueryAt + this.#minRefresh - performance.now());
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#resolver?.cancel();
  }

  /** Run a query after `delayMs`, unless one is already due sooner. */
  #schedule(delayMs: number): void {
    const delay = Math.max(0, delayMs);
    const due = performance.now() + delay;
    if (this.#timer !== undefined && this.#timerDue <= due) return;
    clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#query();
    }, delay);
    this.#timer.unref();
  }

  async #query(): Promise<void> {
    this.#querying = true;
    this.#lastQueryAt = performance.now();
    const answers = await Promise.all(this.#families.map((family) => this.#lookup(family)));
    this.#querying = false;
    if (this.#closed) return;
    this.#schedule(this.#interval);
    for (const update of this.#updatesFor(answers)) this.#listener?.(update);
  }

  async #lookup(family: Family): Promise<FamilyAnswer> {
    const resolver = this.#resolver!;
    try {
      const addresses = family === 'ipv4' ? await resolver.resolve4(this.#name) : await resolver.resolve6(this.#name);
      return { family, addresses };
    } catch (error) {
      const failure = error as Error & { code?: string };
      if (failure.code !== undefined && AUTHORITATIVE_EMPTY.has(failure.code)) return { family, addresses: [] };
      return { family, error: failure };
    }
  }

  #updatesFor(answers: readonly FamilyAnswer[]): DiscoveryUpdate[] {
    const failed = answers.filter((answer) => 'error' in answer);
    const describe = (list: typeof failed) =>
      list.map((f) => `${RECORD_TYPE[f.family]} ${f.error.code ?? f.error.message}`).join(', ');
    if (failed.length === answers.length) {
      const error = new Error(`DNS lookup of ${this.#name} failed (${describe(failed)}); keeping the last good endpoints`, { cause: failed[0]?.error });
      return [{ type: 'error', error }];
    }
    for (const answer of answers) if ('addresses' in answer) this.#known.set(answer.family, answer.addresses);

    const updates: DiscoveryUpdate[] = [];
    const hosts = [...new Set(this.#families.flatMap((family) => this.#known.get(family) ?? []))].sort(compareAddresses);
    const identity = hosts.join(',');
    if (identity !== this.#emitted) {
      this.#emitted = identity;
      updates.push({ type: 'reset', endpoints: hosts.map((host) => ({ host, port: this.#port, weight: 1 })) });
    }
    if (failed.length > 0) {
      const error = new Error(`DNS lookup of ${this.#name} partly failed (${describe(failed)}); keeping those records' last known addresses`, { cause: failed[0]?.error });
      updates.push({ type: 'error', error });
    }
    return updates;
  }
}

/** IPv4 before IPv6, IPv4 in numeric order, so logs and diffs read naturally. */
function compareAddresses(a: string, b: string): number {
  const familyA = isIP(a);
  const familyB = isIP(b);
  if (familyA !== familyB) return familyA - familyB;
  if (familyA === 4) return ipv4Number(a) - ipv4Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

function ipv4Number(address: string): number {
  return address.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
}
