/**
 * How an RPC, or one attempt of it on an endpoint, ended: one type for both,
 * so that the cluster's feedback loops (outlier detection, policies), the
 * retry rules, metrics and the access log read the same thing.
 */
import { FAILURES, type FailureCode } from './failures.ts';
import { Status } from './status.ts';

export interface Outcome {
  /** The gRPC status: the backend's when it answered, else the proxy's own. */
  readonly status: number;
  /** Why the proxy ended it (src/grpc/failures.ts); undefined when a backend answered with `status`. */
  readonly failure: FailureCode | undefined;
}

/** The backend answered with `status` (in headers or trailers). */
export function answered(status: number): Outcome {
  return status >= 0 && status < ANSWERS.length ? ANSWERS[status]! : { status, failure: undefined };
}

/** The proxy ended it with catalogue `failure`, and its status unless `status` says otherwise. */
export function failed(failure: FailureCode, status: number = FAILURES[failure].status): Outcome {
  return status === FAILURES[failure].status ? FAILED[failure] : { status, failure };
}

const ANSWERS: readonly Outcome[] = Array.from({ length: 17 }, (_, status) => ({ status, failure: undefined }));
const FAILED = Object.fromEntries(Object.entries(FAILURES).map(([code, spec]) => [code, { status: spec.status, failure: code }])) as unknown as Record<FailureCode, Outcome>;

/** gRPC statuses that say the server side failed, rather than that the request was wrong. */
const SERVER_FAILURES: ReadonlySet<number> = new Set([Status.UNKNOWN, Status.RESOURCE_EXHAUSTED, Status.INTERNAL, Status.UNAVAILABLE, Status.DATA_LOSS]);

/** Failures of an attempt that are the endpoint's doing. */
const ENDPOINT_FAILURES: ReadonlySet<FailureCode | undefined> = new Set<FailureCode>(['upstream_connect_failure', 'upstream_reset', 'upstream_protocol_error', 'per_try_timeout']);

/** Did the endpoint fail this attempt? Balancing policies penalise endpoints that do. */
export function isEndpointFailure(outcome: Outcome): boolean {
  return outcome.failure === undefined ? SERVER_FAILURES.has(outcome.status) : ENDPOINT_FAILURES.has(outcome.failure);
}

/**
 * Says nothing about the endpoint: the proxy or the client ended the attempt
 * (deadline, cancellation), or the backend never processed it (refused).
 */
export function isNeutral(outcome: Outcome): boolean {
  return outcome.failure !== undefined && !ENDPOINT_FAILURES.has(outcome.failure);
}

/**
 * A gateway error, as outlier detection's consecutive_gateway_errors counts
 * them: the endpoint failed to answer, or answered UNAVAILABLE.
 */
export function isGatewayError(outcome: Outcome): boolean {
  return outcome.failure === undefined ? outcome.status === Status.UNAVAILABLE : ENDPOINT_FAILURES.has(outcome.failure);
}
