/**
 * The catalogue of every way the proxy itself ends an RPC (or one attempt of
 * it) with a status of its own, each with a stable code, as Envoy's response
 * flags are. The code goes in the access log (`reason`), in the `reason` label
 * of grpc_server_handled_total and switchyard_upstream_rpcs_total, and in
 * docs/observability.md; an operator greps it, a dashboard groups by it. An
 * RPC that a backend answered has no code: the status is the backend's.
 *
 * `message` is what the client is told: it names the failure, never an
 * internal address or endpoint (those go to the access log's `error`).
 */
import { Status } from './status.ts';

/**
 * Whether the proxy may send the RPC again after this failure:
 * - `transparent`: the backend never saw the request; always retried (once), whatever the route says;
 * - `policy`: retried when the route's retry_policy names the condition (`retry_on`);
 * - `never`: final.
 */
export type RetryClass = 'transparent' | 'policy' | 'never';

export interface FailureSpec {
  /** The status the client receives (a few upstream failures keep a more precise one, see `upstream_reset`). */
  readonly status: number;
  readonly retry: RetryClass;
  /** The client-facing message, when the place that fails has nothing more specific (and safe) to say. */
  readonly message: string;
}

export const FAILURES = {
  // Before routing: the request itself.
  not_grpc: { status: Status.UNKNOWN, retry: 'never', message: 'expected a gRPC request (POST, content-type application/grpc); answered HTTP 415' },
  malformed_path: { status: Status.UNIMPLEMENTED, retry: 'never', message: 'malformed :path: a gRPC method is /package.Service/Method' },
  header_list_too_large: { status: Status.RESOURCE_EXHAUSTED, retry: 'never', message: 'request header list exceeds max_header_list_size' },
  bad_grpc_timeout: { status: Status.INVALID_ARGUMENT, retry: 'never', message: 'malformed grpc-timeout' },
  request_too_large: { status: Status.RESOURCE_EXHAUSTED, retry: 'never', message: 'request message exceeds max_request_message_bytes' },
  malformed_request: { status: Status.INVALID_ARGUMENT, retry: 'never', message: 'the request body could not be translated to gRPC' },
  // Policy: who may call what, how often, and where it goes.
  denied: { status: Status.PERMISSION_DENIED, retry: 'never', message: 'permission denied' },
  rate_limited: { status: Status.RESOURCE_EXHAUSTED, retry: 'never', message: 'rate limit exceeded' },
  no_route: { status: Status.UNIMPLEMENTED, retry: 'never', message: 'no route for this method' },
  direct_response: { status: Status.OK, retry: 'never', message: '' },
  no_cluster: { status: Status.UNAVAILABLE, retry: 'never', message: 'the route\'s cluster does not exist' },
  overloaded: { status: Status.UNAVAILABLE, retry: 'never', message: 'the proxy is overloaded' },
  // The cluster: endpoints and circuit breakers.
  no_healthy_endpoint: { status: Status.UNAVAILABLE, retry: 'never', message: 'no healthy endpoint' },
  overflow_requests: { status: Status.UNAVAILABLE, retry: 'never', message: 'circuit breaker max_requests reached' },
  overflow_pending: { status: Status.UNAVAILABLE, retry: 'never', message: 'circuit breaker max_pending_requests reached' },
  overflow_connections: { status: Status.UNAVAILABLE, retry: 'never', message: 'circuit breaker max_connections reached' },
  retry_budget_exhausted: { status: Status.UNAVAILABLE, retry: 'never', message: 'not retried: retry budget exhausted' },
  // An attempt on an endpoint.
  upstream_connect_failure: { status: Status.UNAVAILABLE, retry: 'transparent', message: 'upstream connect failed' },
  upstream_refused: { status: Status.UNAVAILABLE, retry: 'transparent', message: 'upstream refused the stream before processing it' },
  upstream_reset: { status: Status.UNAVAILABLE, retry: 'policy', message: 'upstream reset the stream' },
  upstream_protocol_error: { status: Status.INTERNAL, retry: 'policy', message: 'upstream broke the gRPC protocol' },
  per_try_timeout: { status: Status.UNAVAILABLE, retry: 'policy', message: 'upstream per-try timeout' },
  response_too_large: { status: Status.RESOURCE_EXHAUSTED, retry: 'never', message: 'response message exceeds max_response_message_bytes' },
  // Time limits.
  deadline_exceeded: { status: Status.DEADLINE_EXCEEDED, retry: 'never', message: 'deadline exceeded' },
  route_timeout: { status: Status.DEADLINE_EXCEEDED, retry: 'never', message: 'deadline exceeded (route timeout)' },
  max_stream_duration: { status: Status.DEADLINE_EXCEEDED, retry: 'never', message: 'stream exceeded max_stream_duration' },
  // The client's side, and the proxy's own lifecycle.
  client_cancelled: { status: Status.CANCELLED, retry: 'never', message: 'the client reset the stream' },
  stalled_stream: { status: Status.CANCELLED, retry: 'never', message: 'the client stopped reading: stalled_stream_timeout' },
  draining: { status: Status.UNAVAILABLE, retry: 'never', message: 'the proxy is shutting this connection down' },
  /** Attempts only: the proxy ended the attempt because the RPC ended for another reason. */
  abandoned: { status: Status.CANCELLED, retry: 'never', message: 'attempt abandoned' },
} as const satisfies Record<string, FailureSpec>;

export type FailureCode = keyof typeof FAILURES;

export const FAILURE_CODES = Object.keys(FAILURES) as readonly FailureCode[];
