/**
 * The two-phase GOAWAY that ends a client connection without failing an RPC
 * (as grpc-go does, and nghttp2's shutdown notice):
 *
 *   1. GOAWAY with last-stream-id 2^31-1: "stop opening streams here".
 *   2. PING. The client answers after it has read the GOAWAY, so once the
 *      PING ack is back, every stream it opened before that has arrived.
 *   3. GOAWAY with the real last stream id: the streams up to it finish
 *      normally, and the connection closes after the last of them. A stream
 *      that crossed the first GOAWAY on the wire is still processed; one that
 *      crossed the second is not, and its id, above the last stream id, tells
 *      the client so: gRPC clients retry it on another connection.
 */
import { ErrorCode, MAX_STREAM_ID } from '../http2/constants.ts';
import type { ServerConnection } from '../http2/server-connection.ts';

export { MAX_STREAM_ID };

/**
 * How long to wait for the PING ack before sending the final GOAWAY anyway.
 * An ack takes one round trip; a client that stopped reading never sends it.
 * The final GOAWAY's last stream id covers every stream that arrived by then,
 * so sending it early is safe: it only moves a stream in flight elsewhere.
 */
export const PING_WAIT_MS = 250;

/** Per-connection bookkeeping the listener keeps for the two-phase GOAWAY. */
export interface ConnectionState {
  /** Set once the first GOAWAY went out; a connection is only sent away once. */
  goingAway: boolean;
}

/**
 * Starts the two-phase GOAWAY on `connection`. Returns at once; the phases run
 * on their own and end with the connection closing after its last stream.
 * Does nothing if the connection is already going away or closed.
 */
export function goAwayGracefully(connection: ServerConnection, state: ConnectionState): void {
  if (state.goingAway || connection.closed) return;
  state.goingAway = true;
  connection.goAway(ErrorCode.NO_ERROR, MAX_STREAM_ID);
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(fallback);
    connection.shutdown(connection.lastPeerStreamId);
  };
  const fallback = setTimeout(finish, PING_WAIT_MS);
  fallback.unref();
  if (!connection.ping((error) => error === undefined && finish())) return;
}
