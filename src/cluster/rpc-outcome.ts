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
