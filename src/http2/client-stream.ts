/**
 * A stream we opened on a backend: one attempt of an RPC, behind the
 * UpstreamStream contract (src/grpc/streams.ts).
 */
import type { HeaderMap, UpstreamBreak, UpstreamEvents, UpstreamStream } from '../grpc/streams.ts';
import { ErrorCode } from './constants.ts';
import { StreamCore, type StreamHost } from './stream.ts';

/** What a client stream tells its connection. */
export interface ClientStreamHost extends StreamHost {
  readonly closed: boolean;
  /** The stream sent RST_STREAM CANCEL (the pool's reset budget). */
  cancelled(): void;
}

export class ClientStream extends StreamCore implements UpstreamStream {
  readonly #host: ClientStreamHost;
  events: UpstreamEvents | undefined;
  /** Final (non-1xx) response headers arrived. */
  #responded = false;
  #responseEnded = false;
  /** Why it broke, when it did; undefined when the response ended normally. */
  #broken: UpstreamBreak | undefined;

  constructor(id: number, host: ClientStreamHost, sendWindow: number) {
    super(id, host, sendWindow);
    this.#host = host;
  }

  attach(events: UpstreamEvents): void {
    this.events = events;
    if (!this.paused) this.releaseInbound();
  }

  end(): void {
    this.endOutbound();
  }

  get connectionLost(): boolean {
    return this.#host.closed;
  }

  /**
   * RST_STREAM CANCEL. When the response has already ended and only our request side is open, the
   * request is ended instead (END_STREAM): nothing is being abandoned, so no reset is spent.
   */
  cancel(): void {
    if (this.closed) return;
    if (this.#responseEnded && !this.localEnded) {
      this.endOutbound();
      return;
    }
    this.reset(ErrorCode.CANCEL);
    this.#host.cancelled();
  }

  /**
   * A reset of ours. One the engine sends because the backend broke a rule (FLOW_CONTROL_ERROR,
   * PROTOCOL_ERROR, STREAM_CLOSED) is how the attempt broke: it must not read as a cancellation.
   */
  override reset(code: number = ErrorCode.CANCEL): void {
    if (!this.closed && code !== ErrorCode.CANCEL) this.#broken ??= { rstCode: code, refused: false, connectionError: undefined };
    super.reset(code);
  }

  /** A header block from the backend: response headers, then perhaps trailers (which end the stream). */
  receiveHeaders(headers: HeaderMap, endStream: boolean): void {
    if (!this.#responded) {
      const status = Number(headers[':status']);
      // Informational responses (1xx) are not the response.
      if (status >= 100 && status < 200) return;
      this.#responded = true;
      this.events?.onResponse(headers, endStream);
    } else {
      this.events?.onTrailers(headers);
    }
    if (endStream) this.receiveEnd();
  }

  get responded(): boolean {
    return this.#responded;
  }

  /** The stream broke under us (reset, refused, the connection lost): closes it with that reason. */
  breakWith(broken: UpstreamBreak): void {
    if (this.closed) return;
    this.#broken = broken;
    this.close();
  }

  protected deliverData(chunk: Buffer): void {
    this.events?.onResponseData(chunk);
  }

  protected deliverEnd(): void {
    this.#responseEnded = true;
    this.events?.onResponseEnd();
  }

  protected deliverDrain(): void {
    this.events?.onRequestDrain();
  }

  protected closedHook(): void {
    const broken = this.#responseEnded ? undefined : (this.#broken ?? { rstCode: ErrorCode.CANCEL, refused: false, connectionError: undefined });
    this.events?.onUpstreamClose(broken);
  }
}
