/**
 * A lean ADS client for load: many state-of-the-world streams over raw
 * node:http2 sessions with mTLS (up to `streamsPerConnection` per session),
 * messages read and written with the agent's minimal wire codec
 * (src/xds/agent/wire.ts), no grpc-js and no protos, so that thousands of
 * streams cost the load generator little. Each stream subscribes to the
 * ClusterLoadAssignments named, ACKs every response at once, and remembers
 * when responses came. A stream that ends reconnects, to a replica picked at
 * random, after a jittered exponential backoff (the agent's: 250 ms doubling
 * to 15 s, 50–100 % of each step), or after the `grpc-retry-pushback-ms` hint
 * of a server that refused it for load.
 */
import * as http2 from 'node:http2';
import { readSotwResponse, writeNode, writeSotwRequest } from '../src/xds/agent/wire.ts';

const PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';

export interface LeanClientOptions {
  /** host:port of each replica; a (re)connecting stream picks one at random. */
  readonly replicas: readonly string[];
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The name the server certificate is checked for. */
  readonly serverName: string;
  readonly streamsPerConnection: number;
  /** ClusterLoadAssignment names every stream subscribes to. */
  readonly names: readonly string[];
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

interface LeanStream {
  readonly nodeId: string;
  replica: string | undefined;
  stream: http2.ClientHttp2Stream | undefined;
  /** version_info of the last EDS response. */
  version: string;
  /** Every name arrived at least once since the stream (re)connected. */
  synced: boolean;
  responses: number;
  /** When the first response after the current mark came (epoch ms), or undefined. */
  markedAt: number | undefined;
  attempt: number;
  reconnects: number;
}

interface Session {
  readonly replica: string;
  readonly session: http2.ClientHttp2Session;
  streams: number;
}

/** Epoch milliseconds with sub-millisecond precision, comparable across processes on one machine. */
export const now = (): number => performance.timeOrigin + performance.now();

export class LeanAdsClient {
  readonly #options: LeanClientOptions;
  readonly #streams: LeanStream[] = [];
  readonly #sessions: Session[] = [];
  #mark: number | undefined;
  #closed = false;
  #refused = 0;

  constructor(options: LeanClientOptions) {
    this.#options = options;
  }

  /** Opens `count` streams named `<prefix>-<i>`. */
  open(prefix: string, count: number): void {
    for (let i = 0; i < count; i++) {
      const state: LeanStream = { nodeId: `${prefix}-${i}`, replica: undefined, stream: undefined, version: '', synced: false, responses: 0, markedAt: undefined, attempt: 0, reconnects: 0 };
      this.#streams.push(state);
      this.#connect(state);
    }
  }

  /** From now on, each stream records when its next response arrives. */
  mark(at: number): void {
    this.#mark = at;
    for (const stream of this.#streams) stream.markedAt = undefined;
  }

  status() {
    const byReplica: Record<string, number> = {};
    let open = 0;
    let synced = 0;
    let marked = 0;
    for (const stream of this.#streams) {
      if (stream.stream) {
        open++;
        byReplica[stream.replica!] = (byReplica[stream.replica!] ?? 0) + 1;
      }
      if (stream.synced) synced++;
      if (stream.markedAt !== undefined) marked++;
    }
    return { streams: this.#streams.length, open, synced, marked, byReplica, refused: this.#refused, reconnects: this.#streams.reduce((sum, s) => sum + s.reconnects, 0) };
  }

  /** Per stream, ms from the mark to its first response after it (streams without one left out). */
  latencies(): number[] {
    const mark = this.#mark ?? 0;
    return this.#streams.filter((s) => s.markedAt !== undefined).map((s) => s.markedAt! - mark);
  }

  close(): void {
    this.#closed = true;
    for (const { session } of this.#sessions) session.destroy();
  }

  #sessionFor(replica: string): Session {
    let entry = this.#sessions.find((s) => s.replica === replica && s.streams < this.#options.streamsPerConnection && !s.session.closed && !s.session.destroyed);
    if (entry) return entry;
    const session = http2.connect(`https://${replica}`, {
      ca: this.#options.ca,
      cert: this.#options.cert,
      key: this.#options.key,
      servername: this.#options.serverName,
      // Large windows: the initial answer of a stream is hundreds of KiB.
      settings: { initialWindowSize: 8 * 1024 * 1024 },
      maxSessionMemory: 256,
    });
    session.on('error', () => {});
    session.on('connect', () => session.setLocalWindowSize(64 * 1024 * 1024));
    const created: Session = { replica, session, streams: 0 };
    session.on('close', () => {
      const index = this.#sessions.indexOf(created);
      if (index >= 0) this.#sessions.splice(index, 1);
    });
    this.#sessions.push(created);
    return created;
  }

  #connect(state: LeanStream): void {
    if (this.#closed) return;
    const { replicas } = this.#options;
    const replica = replicas[Math.floor(Math.random() * replicas.length)]!;
    const entry = this.#sessionFor(replica);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = entry.session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers' });
    } catch {
      this.#retry(state, 0);
      return;
    }
    entry.streams++;
    state.replica = replica;
    state.stream = stream;
    state.synced = false;
    let pending: Buffer = Buffer.alloc(0);
    let pushback = 0;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      entry.streams--;
      if (state.stream === stream) state.stream = undefined;
      this.#retry(state, pushback);
    };
    const readStatus = (headers: http2.IncomingHttpHeaders) => {
      // A refusal for load carries a retry hint; a replica that shuts down sends none.
      const hint = Number(headers['grpc-retry-pushback-ms']);
      if (headers['grpc-retry-pushback-ms'] !== undefined && Number.isFinite(hint) && hint >= 0) {
        pushback = hint;
        this.#refused++;
      }
    };
    stream.on('response', readStatus);
    stream.on('trailers', readStatus);
    stream.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        const length = pending.readUInt32BE(1);
        if (pending.length < 5 + length) break;
        this.#onResponse(state, stream, pending.subarray(5, 5 + length));
        pending = pending.subarray(5 + length);
      }
    });
    stream.on('error', () => {});
    // The server ended its side (a status, maybe trailers-only): end ours, so the stream closes and is retried.
    stream.on('end', () => stream.close());
    stream.on('close', end);
    const first = writeSotwRequest({
      versionInfo: state.version,
      node: writeNode({ id: state.nodeId, cluster: 'bench', userAgentName: 'gRPC Node Pure JS' }),
      resourceNames: this.#options.names,
      typeUrl: EDS,
      responseNonce: '',
    });
    stream.write(frame(first));
  }

  #onResponse(state: LeanStream, stream: http2.ClientHttp2Stream, message: Buffer): void {
    const receivedAt = now();
    const response = readSotwResponse(message);
    state.responses++;
    state.version = response.versionInfo;
    state.attempt = 0;
    if (!state.synced && response.resources.length >= this.#options.names.length) state.synced = true;
    if (this.#mark !== undefined && state.markedAt === undefined && receivedAt >= this.#mark) state.markedAt = receivedAt;
    stream.write(frame(writeSotwRequest({ versionInfo: response.versionInfo, resourceNames: this.#options.names, typeUrl: response.typeUrl, responseNonce: response.nonce })));
  }

  #retry(state: LeanStream, pushbackMs: number): void {
    if (this.#closed) return;
    const { initialMs, maxMs } = this.#options.backoff ?? { initialMs: 250, maxMs: 15_000 };
    let delay: number;
    if (pushbackMs > 0) {
      // Refused for load: the server said when to come back (already spread); the backoff does not grow.
      delay = pushbackMs;
    } else {
      const step = Math.min(maxMs, initialMs * 2 ** state.attempt);
      state.attempt = Math.min(state.attempt + 1, 30);
      delay = step * (0.5 + Math.random() * 0.5);
    }
    state.reconnects++;
    setTimeout(() => this.#connect(state), delay).unref();
  }
}

function frame(message: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}
