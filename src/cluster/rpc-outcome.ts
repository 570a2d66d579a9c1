/** How one attempt of an RPC on an endpoint ended, as the cluster's feedback loops (outlier detection, policies) see it. */
export type RpcOutcome =
  /** The backend answered with a gRPC status (from headers or trailers). */
  | { readonly kind: 'status'; readonly code: number }
  /** No connection could be made (refused, timed out, TLS failure). */
  | { readonly kind: 'connect_failure' }
  /** The stream or connection broke before a status arrived. */
  | { readonly kind: 'reset' }
  /** The proxy or the client ended the attempt (deadline, cancellation): says nothing about the endpoint. */
  | { readonly kind: 'abandoned' };

/** gRPC statuses that say the server side failed, rather than that the request was wrong. */
const SERVER_FAILURES = new Set([2 /* UNKNOWN */, 8 /* RESOURCE_EXHAUSTED */, 13 /* INTERNAL */, 14 /* UNAVAILABLE */, 15 /* DATA_LOSS */]);

/** Did the endpoint fail this attempt? Balancing policies penalise endpoints that do. */
export function isEndpointFailure(outcome: RpcOutcome): boolean {
  switch (outcome.kind) {
    case 'status': return SERVER_FAILURES.has(outcome.code);
    case 'connect_failure':
    case 'reset': return true;
    case 'abandoned': return false;
  }
}
