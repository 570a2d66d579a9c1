/**
 * gRPC's retry pushback: a server that refuses a call for load may say how
 * long to wait before trying again, in the `grpc-retry-pushback-ms` trailer.
 * The control plane sends it when it sheds a stream (limits.max_streams);
 * the proxy's xDS client and the agent wait at least that long. Imports
 * nothing at run time, so the agent stays small.
 */
import type { Metadata } from '@grpc/grpc-js';

/** The longest hint honoured: a server cannot park a client for more than this. */
const MAX_PUSHBACK_MS = 60_000;

/** The hint in `metadata`, in ms, or 0 when there is none (or it is not a whole number of ms). */
export function retryPushbackMs(metadata: Metadata | undefined): number {
  const value = metadata?.get('grpc-retry-pushback-ms')[0];
  if (typeof value !== 'string' || !/^\d{1,9}$/.test(value)) return 0;
  return Math.min(Number(value), MAX_PUSHBACK_MS);
}
