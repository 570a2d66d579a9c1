/**
 * What the proxy reports of each WebSocket upgrade, refused or served: one
 * record when it ends, for the access log and metrics (docs/websocket.md
 * lists the fields and their values).
 */

/** How the upgrade went: `upgraded`, or why it was refused (the `result` label of the upgrade counter). */
export type UpgradeResult =
  | 'upgraded'
  | 'no_route'
  | 'upgrades_disabled'
  | 'bad_handshake'
  | 'bad_version'
  | 'method_not_allowed'
  | 'forbidden_origin'
  | 'draining'
  | 'listener_limit'
  | 'ip_limit'
  | 'no_cluster'
  | 'no_healthy_endpoint'
  | 'affinity_unavailable'
  | 'connect_failure'
  | 'handshake_timeout'
  | 'bad_accept'
  | 'backend_refused'
  | 'client_gone';

export const UPGRADE_RESULTS: readonly UpgradeResult[] = [
  'upgraded', 'no_route', 'upgrades_disabled', 'bad_handshake', 'bad_version', 'method_not_allowed', 'forbidden_origin', 'draining',
  'listener_limit', 'ip_limit', 'no_cluster', 'no_healthy_endpoint', 'affinity_unavailable', 'connect_failure', 'handshake_timeout',
  'bad_accept', 'backend_refused', 'client_gone',
];

/** Who sent the first close frame of a session, or `none` when it ended without one (1006 to whoever was left). */
export type ClosedBy = 'client' | 'backend' | 'proxy' | 'none';

/** Why the proxy itself closed a session. */
export type ProxyCloseReason =
  | 'drain'
  | 'idle_timeout'
  | 'max_connection_age'
  | 'ping_timeout'
  | 'protocol_error'
  | 'message_too_big'
  | 'policy_violation'
  | 'backend_gone'
  | 'client_gone'
  | 'close_timeout'
  | 'listener_destroyed';

/** How a cookie-affinity route placed the session. */
export type AffinityOutcome = 'none' | 'cookie' | 'new' | 'stale' | 'tampered';

export interface WebSocketRecord {
  /** ms since the epoch, when the upgrade arrived. */
  readonly time: number;
  /** performance.now() when the upgrade arrived. */
  readonly startedAt: number;
  readonly listener: string;
  /** `http/1.1` (Upgrade) or `h2` (extended CONNECT, RFC 8441). */
  readonly protocol: 'http/1.1' | 'h2';
  readonly peer: string;
  readonly path: string;
  route: string | undefined;
  cluster: string | undefined;
  endpoint: string | undefined;
  result: UpgradeResult;
  /** The HTTP status the client received for its upgrade (101, or 200 over HTTP/2, or the refusal's). */
  status: number;
  affinity: AffinityOutcome;
  /** The first close frame's sender and code; undefined code when there was none. */
  closedBy: ClosedBy;
  closeCode: number | undefined;
  /** Set when the proxy closed the session itself. */
  proxyReason: ProxyCloseReason | undefined;
  /** Why, in words, when something went wrong (never sent to the client when it names an address). */
  error: string | undefined;
  bytesFromClient: number;
  bytesFromBackend: number;
}
