/**
 * Who may hold an xDS stream, as which node, and which resources it may
 * receive. Pure: the stream hands in the verified certificate's identity and
 * the node it claims, and asks per resource name.
 *
 * The caller's identity is its SPIFFE ID when the certificate has one, else
 * its DNS SANs (any of them may be the listed identity), else its subject CN,
 * so a certificate with a SPIFFE ID cannot be matched by a DNS SAN it also
 * carries. DNS names compare case-insensitively, SPIFFE IDs and CNs exactly.
 */
import type { CallerIdentity } from '../../security/identity.ts';
import { clip } from '../clip.ts';
import type { XdsResource } from '../snapshot.ts';
import type { XdsAuthorizationConfig, XdsIdentityRuleConfig } from './xds-auth-schema.ts';

/** What a client claims to be on its first request. */
export interface NodeClaim {
  readonly id: string;
  readonly cluster: string;
}

/** The names a caller's certificate can be listed under, in the one class that applies. */
export function identityNames(caller: CallerIdentity): { readonly kind: 'spiffe' | 'dns' | 'cn' | 'none'; readonly names: readonly string[] } {
  if (!caller.authenticated) return { kind: 'none', names: [] };
  if (caller.spiffeId !== undefined) return { kind: 'spiffe', names: [caller.spiffeId] };
  if (caller.dnsNames.length > 0) return { kind: 'dns', names: caller.dnsNames };
  if (caller.commonName !== undefined) return { kind: 'cn', names: [caller.commonName] };
  return { kind: 'none', names: [] };
}

export class XdsAuthorizer {
  readonly #exact = new Map<string, XdsIdentityRule>();
  readonly #dns = new Map<string, XdsIdentityRule>();

  constructor(config: XdsAuthorizationConfig) {
    for (const ruleConfig of config.identities) {
      const rule = new XdsIdentityRule(ruleConfig);
      if (!this.#exact.has(rule.identity)) this.#exact.set(rule.identity, rule);
      const lower = rule.identity.toLowerCase();
      if (!this.#dns.has(lower)) this.#dns.set(lower, rule);
    }
  }

  /** The rule listing this caller, or undefined: not listed, so refused (default deny). */
  ruleFor(caller: CallerIdentity): XdsIdentityRule | undefined {
    const { kind, names } = identityNames(caller);
    if (kind === 'dns') {
      for (const name of names) {
        const rule = this.#dns.get(name.toLowerCase());
        if (rule) return rule;
      }
      return undefined;
    }
    return names[0] === undefined ? undefined : this.#exact.get(names[0]);
  }
}

/** Decisions per name are cached; a cache that grows past this is dropped and rebuilt. */
const MAX_CACHED_DECISIONS = 50_000;

export class XdsIdentityRule {
  /** The identity as written in the rules: the key for per-identity limits and the name in logs. */
  readonly identity: string;
  readonly #nodeIds: readonly RegExp[];
  readonly #nodeClusters: readonly RegExp[] | undefined;
  readonly #clusters: NameMatcher;
  readonly #listeners: NameMatcher;
  readonly #routeConfigs: NameMatcher | undefined;

  constructor(config: XdsIdentityRuleConfig) {
    this.identity = config.identity;
    this.#nodeIds = config.node_ids.map(compileGlob);
    this.#nodeClusters = config.node_clusters?.map(compileGlob);
    this.#clusters = new NameMatcher(config.clusters);
    this.#listeners = new NameMatcher(config.listeners);
    this.#routeConfigs = config.route_configs ? new NameMatcher(config.route_configs) : undefined;
  }

  /** Why this identity may not claim `node`, or undefined when it may. */
  checkNode(node: NodeClaim): string | undefined {
    if (!this.#nodeIds.some((pattern) => pattern.test(node.id))) return `${this.identity} may not claim node.id "${clip(node.id)}"`;
    if (this.#nodeClusters && !this.#nodeClusters.some((pattern) => pattern.test(node.cluster))) {
      return `${this.identity} may not claim node.cluster "${clip(node.cluster)}"`;
    }
    return undefined;
  }

  /** Cluster and ClusterLoadAssignment names. */
  allowsCluster(name: string): boolean {
    return this.#clusters.matches(name);
  }

  allowsListener(name: string): boolean {
    return this.#listeners.matches(name);
  }

  /**
   * Which RouteConfiguration names this identity may receive: those named by
   * the listeners it may receive (as they are now), and those its
   * route_configs globs match.
   */
  routeFilter(listeners: ReadonlyMap<string, XdsResource>, routeNamesOf: (listener: XdsResource) => readonly string[]): (name: string) => boolean {
    const named = new Set<string>();
    for (const [name, listener] of listeners) {
      if (!this.allowsListener(name)) continue;
      for (const route of routeNamesOf(listener)) named.add(route);
    }
    const direct = this.#routeConfigs;
    return (name) => named.has(name) || (direct?.matches(name) ?? false);
  }
}

class NameMatcher {
  readonly #patterns: readonly RegExp[];
  readonly #matchesAll: boolean;
  #cache = new Map<string, boolean>();

  constructor(globs: readonly string[]) {
    this.#patterns = globs.map(compileGlob);
    this.#matchesAll = globs.includes('*');
  }

  matches(name: string): boolean {
    if (this.#matchesAll) return true;
    let decision = this.#cache.get(name);
    if (decision === undefined) {
      decision = this.#patterns.some((pattern) => pattern.test(name));
      if (this.#cache.size >= MAX_CACHED_DECISIONS) this.#cache = new Map();
      this.#cache.set(name, decision);
    }
    return decision;
  }
}

/** `*` matches any run of characters (including none), `?` exactly one; everything else literally. */
export function compileGlob(glob: string): RegExp {
  let source = '';
  for (const char of glob) {
    if (char === '*') source += '[\\s\\S]*';
    else if (char === '?') source += '[\\s\\S]';
    else source += char.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'u');
}
