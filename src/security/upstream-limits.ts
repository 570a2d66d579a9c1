/**
 * Limits on what a backend can make Switchyard hold, set on every upstream
 * HTTP/2 connection. A backend is more trusted than a client, but a
 * compromised or buggy one must not be able to exhaust the proxy either.
 * (Response message sizes are checked per RPC: max_response_message_bytes.)
 */
/** Response header block (metadata and trailers) accepted from a backend: 64 KiB, four times the client-side default. */
export const UPSTREAM_MAX_HEADER_LIST_SIZE = 64 << 10;

/**
 * RST_STREAMs the proxy may send on one upstream connection at once, and per second after that, before
 * it stops opening streams there and moves to a fresh connection. The proxy is the one peer a backend
 * sees, so every client's cancellations land on a few connections; servers with a rapid-reset
 * mitigation (nghttp2, so Node ≥ 22: 1,000 at once, then 33/s) close a connection that resets more,
 * and every RPC sharing it fails. Half the burst and a slightly lower rate stay clear of that.
 */
export const UPSTREAM_RESET_BURST = 500;
export const UPSTREAM_RESETS_PER_SECOND = 30;

/** Header fields per response header block from a backend. */
export const UPSTREAM_MAX_HEADER_FIELDS = 128;
