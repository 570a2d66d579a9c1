/**
 * The two-phase GOAWAY that ends a client connection without failing an RPC
 * (as grpc-go does, and nghttp2's shutdown notice):
 *
 *   1. GOAWAY with last-stream-id 2^31-1: "stop opening streams here".
 *   2. PING. The client answers after it has read the GOAWAY, so once the
 *      PING ack is back, every stream it opened before that has arrived.
 *   3. GOAWAY with the real last stream id, then close(): the streams up to
 *      that id finish normally.
 *
 * nghttp2 (under Node's API, which has no shutdown notice) stops taking new
 * streams at the first GOAWAY already: a stream that crossed it on the wire
 * is left unanswered until the final GOAWAY, whose last stream id is below
 * it, tells the client it was never processed. gRPC clients then retry it on
 * another connection transparently. So no RPC is lost either way, and the
 * PING only bounds how long such a stream waits to learn it must move.
 */
import * as http2 from 'node:http2';

const { NGHTTP2_NO_ERROR } = http2.constants;

/** The largest stream id: "every stream you have opened may still be processed". */
export const MAX_STREAM_ID = 2 ** 31 - 1;

/**
 * How long to wait for the PING ack before sending the final GOAWAY anyway.
 * An ack takes one round trip; some clients never send it once they have
 * read a GOAWAY (Node's own http2 client, grpc-js included, at times). Sending
 * the final GOAWAY early is safe (see above), so the wait is short: it only
 * delays the streams that crossed the first GOAWAY.
 */
export const PING_WAIT_MS = 250;

/** Per-connection bookkeeping the listener keeps for the two-phase GOAWAY. */
export interface ConnectionState {
  /** Highest stream id handed to the RPC handler on this connection. */
  lastStreamId: number;
  /** Set once the first GOAWAY went out; a connection is only sent away once. */
  goingAway: boolean;
}

/**
 * Starts the two-phase GOAWAY on `session`. Returns at once; the phases run
 * on their own and end with session.close(), after which in-flight streams
 * finish and the session closes when the last one has. Does nothing if the
 * session is already going away, closed or destroyed.
 */
export function goAwayGracefully(session: http2.ServerHttp2Session, state: ConnectionState): void {
  if (state.goingAway || session.closed || session.destroyed) return;
  state.goingAway = true;
  session.goaway(NGHTTP2_NO_ERROR, MAX_STREAM_ID);

  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(fallback);
    if (session.closed || session.destroyed) return;
    // Node reads 0 as "the last stream nghttp2 processed", which is the same number.
    session.goaway(NGHTTP2_NO_ERROR, state.lastStreamId);
    session.close();
  };
  // Also the "short wait" when the PING cannot be sent or fails.
  const fallback = setTimeout(finish, PING_WAIT_MS);
  fallback.unref();
  try {
    const sent = session.ping((error) => {
      if (!error) finish();
    });
    if (!sent) return;
  } catch {
    // Too many unacknowledged PINGs or a session going down: the fallback timer finishes.
  }
}
