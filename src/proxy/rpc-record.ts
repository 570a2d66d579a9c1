/** What the proxy knows about one RPC; filled as it proceeds and handed to the access log when it ends. */
export interface RpcRecord {
  /** performance.now() when the request headers arrived. */
  readonly startedAt: number;
  /** Wall-clock start, ms since the epoch. */
  readonly time: number;
  readonly path: string;
  readonly peer: string;
  readonly listener: string;
  route: string | undefined;
  cluster: string | undefined;
  endpoint: string | undefined;
  status: number | undefined;
  /** The proxy's own reason when it ended the RPC itself. */
  error: string | undefined;
  /** Attempts after the first. */
  retries: number;
  bytesIn: number;
  bytesOut: number;
  /** Called exactly once, when the downstream stream has closed. */
  finish(): void;
}
