/**
 * Who may hold an xDS stream and what it may receive: the `authorization`
 * and `limits` sections of the control plane's config. Enforced by
 * authorization.ts; docs/control-plane.md ("Security model") explains them.
 */
import { z } from 'zod';
import { duration } from '../../config/schema-primitives.ts';

/** A glob: `*` matches any run of characters (`/` and `:` included), `?` exactly one. */
const glob = z.string().min(1, 'a pattern may not be empty (use "*" to match anything)');

const identityRule = z.strictObject({
  /** The client certificate's identity, exactly: its SPIFFE ID (`spiffe://…`), else one of its DNS SANs, else its subject CN. */
  identity: z.string().min(1),
  /** Globs the node.id claimed on the stream's first request must match (one of them). */
  node_ids: z.array(glob).min(1, 'list at least one node.id pattern'),
  /** When set, node.cluster must match one of these globs too. */
  node_clusters: z.array(glob).min(1).optional(),
  /** Globs of the Cluster and ClusterLoadAssignment names this identity may receive. */
  clusters: z.array(glob),
  /** Globs of the Listener names this identity may receive; the RouteConfigurations those listeners name come with them. */
  listeners: z.array(glob),
  /** Globs of RouteConfiguration names it may receive besides those (for clients that fetch routes without listeners, as Switchyard proxies do). */
  route_configs: z.array(glob).optional(),
});

/** Default deny: a certificate whose identity is not listed gets PERMISSION_DENIED. */
export const xdsAuthorizationSettings = z
  .strictObject({
    identities: z.array(identityRule).min(1, 'list at least one identity: without any, every xDS stream is refused'),
  })
  .superRefine((value, ctx) => {
    const seen = new Map<string, number>();
    value.identities.forEach((rule, i) => {
      const key = normalizeIdentity(rule.identity);
      const first = seen.get(key);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['identities', i, 'identity'], message: `"${rule.identity}" is already listed at identities[${first}]` });
      else seen.set(key, i);
    });
  });

export const xdsLimits = z.strictObject({
  /** Concurrent ADS streams (SotW and delta together) one identity may hold; one more is refused with RESOURCE_EXHAUSTED. */
  max_streams_per_identity: z.number().int().min(1).default(100),
  /** Resource names one subscription (one type on one stream) may hold; more is refused with RESOURCE_EXHAUSTED. */
  max_resource_names: z.number().int().min(1).default(10_000),
  /**
   * Concurrent HTTP/2 streams on one connection (SETTINGS_MAX_CONCURRENT_STREAMS): a stream past it is
   * reset with REFUSED_STREAM before it costs anything. Counts streams not yet admitted, so one client
   * cannot hold thousands of them open on one connection. An agent relays each local stream on its one
   * connection: its --max-local-streams (default 1000) must not exceed this.
   */
  max_streams_per_connection: z.number().int().min(1).max(2 ** 31 - 1).default(1_000),
  /**
   * ADS streams this replica holds at once (admitted or not yet): past it a new stream is refused with
   * UNAVAILABLE and a `grpc-retry-pushback-ms` hint, so that the client goes to another replica.
   */
  max_streams: z.number().int().min(1).default(20_000),
  /** The retry hint sent with such a refusal is 50–150 % of this (spread, so refused clients do not return together). */
  shed_retry_after: duration.default(1_000),
  /** A stream whose client has not read a written response for this long is reset (its memory freed). */
  stalled_stream_timeout: duration.default(30_000),
});

export type XdsAuthorizationConfig = z.output<typeof xdsAuthorizationSettings>;
export type XdsIdentityRuleConfig = XdsAuthorizationConfig['identities'][number];
export type XdsLimitsConfig = z.output<typeof xdsLimits>;

/** For duplicate detection only: DNS names compare case-insensitively, so two spellings of one name are caught. */
function normalizeIdentity(identity: string): string {
  return identity.startsWith('spiffe://') ? identity : identity.toLowerCase();
}
