/**
 * Progress on stderr while the checks run: one live line, rewritten in place,
 * when stderr is a terminal; otherwise (a CI log) a line when a check starts
 * and then at most one every `intervalMs`, so logs stay readable.
 */

export interface ProgressOptions {
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Default: whether the stream is a terminal. */
  readonly live?: boolean;
  /** Non-live: least time between two lines about one check. Default 2 s. */
  readonly intervalMs?: number;
  /** Nothing at all (--quiet). */
  readonly silent?: boolean;
}

const LIVE_REDRAW_MS = 100;

export class Progress {
  readonly #stream: NodeJS.WritableStream;
  readonly #live: boolean;
  readonly #intervalMs: number;
  readonly #silent: boolean;
  #check = '';
  #lastWrite = 0;
  #onScreen = false;

  constructor(options: ProgressOptions = {}) {
    const stream = options.stream ?? process.stderr;
    this.#stream = stream;
    this.#live = options.live ?? (stream as { isTTY?: boolean }).isTTY === true;
    this.#intervalMs = options.intervalMs ?? 2_000;
    this.#silent = options.silent ?? false;
  }

  /** A check begins: always shown. */
  start(check: string, text: string): void {
    this.#check = check;
    this.#lastWrite = 0;
    this.#write(text, true);
  }

  /** How the current check is getting on: shown when the rate limit allows. */
  update(text: string): void {
    this.#write(text, false);
  }

  /** The check is over: clears the live line (the report says how it went). */
  end(): void {
    if (this.#silent) return;
    if (this.#live && this.#onScreen) this.#stream.write('\r\x1b[2K');
    this.#onScreen = false;
  }

  #write(text: string, force: boolean): void {
    if (this.#silent) return;
    const now = performance.now();
    const line = `verify ${this.#check}: ${text}`;
    if (!force && now - this.#lastWrite < (this.#live ? LIVE_REDRAW_MS : this.#intervalMs)) {
      return;
    }
    this.#lastWrite = now;
    if (this.#live) {
      const columns = (this.#stream as { columns?: number }).columns ?? 120;
      this.#stream.write(`\r\x1b[2K${line.slice(0, Math.max(20, columns - 1))}`);
      this.#onScreen = true;
    } else {
      this.#stream.write(`${line}\n`);
    }
  }
}
