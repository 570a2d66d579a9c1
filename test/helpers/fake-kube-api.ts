/**
 * A fake Kubernetes API server for EndpointSlices: a real HTTP server on
 * 127.0.0.1 speaking the list/watch protocol of
 * `GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices`.
 *
 * No cluster can run on the machines these tests run on, so this is what the
 * Kubernetes discovery source is tested against. What it implements, as a
 * real API server does:
 *
 * - One resourceVersion counter for every change in every namespace (etcd's
 *   revision); objects carry the version of their last change, a list
 *   carries the current one.
 * - `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma = and) on lists
 *   and watches.
 * - `?watch=true&resourceVersion=N`: the events after N from the history,
 *   then live events, as newline-delimited JSON `{type, object}`. No (or "0")
 *   resourceVersion: synthetic ADDED events for the current objects first.
 *   An object that stops (starts) matching the selector is sent as DELETED
 *   (ADDED).
 * - `allowWatchBookmarks=true`: BOOKMARK events, when the test asks, carrying
 *   the current resourceVersion.
 * - History can be expired (compaction): a watch from an older version is
 *   answered `410 Gone`, as an HTTP 410 with a Status body or (setting
 *   `goneAs: 'event'`) as a 200 whose only event is an ERROR with a Status of
 *   code 410; open watches can be ended with that ERROR event mid-stream.
 *
 * Test controls: apply/delete slices, bookmarks, expiry, dropping watch
 * connections (abruptly or cleanly), pausing delivery (a stalled watch),
 * failing requests with an HTTP status, stopping and restarting the server on
 * the same port, and a log of every list and watch request.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeConfig, type V1EndpointSlice } from '@kubernetes/client-node';

const API_VERSION = 'discovery.k8s.io/v1';
const PATH = /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/;

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEvent {
  readonly rv: number;
  readonly type: EventType;
  /** The object before the change (undefined for ADDED). */
  readonly before: V1EndpointSlice | undefined;
  /** The object after the change; for DELETED, the last state with the deletion's resourceVersion. */
  readonly after: V1EndpointSlice;
}

interface OpenWatch {
  readonly namespace: string;
  readonly selector: Selector;
  readonly bookmarks: boolean;
  readonly response: http.ServerResponse;
}

export interface ListRecord {
  readonly at: number;
  readonly namespace: string;
  readonly labelSelector: string | undefined;
  /** The resourceVersion the list answered with. */
  readonly resourceVersion: string;
}

export interface WatchRecord {
  readonly at: number;
  readonly namespace: string;
  readonly labelSelector: string | undefined;
  readonly resourceVersion: string | undefined;
  readonly allowWatchBookmarks: boolean;
  /** How it was answered. */
  readonly answer: 'stream' | 'gone-http' | 'gone-event' | 'failed';
}

type Selector = (labels: Readonly<Record<string, string>> | undefined) => boolean;

/** Parses the equality-based selector forms; set-based (`in`, `notin`) are not needed here. */
function parseSelector(text: string | null): Selector {
  if (!text) return () => true;
  const terms = text.split(',').map((term) => term.trim()).filter(Boolean).map((term): Selector => {
    let match = /^([^!=]+)(==|=|!=)(.*)$/.exec(term);
    if (match) {
      const [, key, op, value] = match as unknown as [string, string, string, string];
      return op === '!=' ? (labels) => labels?.[key.trim()] !== value.trim() : (labels) => labels?.[key.trim()] === value.trim();
    }
    match = /^!(.+)$/.exec(term);
    if (match) return (labels) => labels?.[match![1]!] === undefined;
    return (labels) => labels?.[term] !== undefined;
  });
  return (labels) => terms.every((term) => term(labels));
}

function statusObject(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export class FakeKubeApi {
  readonly lists: ListRecord[] = [];
  readonly watches: WatchRecord[] = [];
  /** How a watch from an expired resourceVersion is refused. */
  goneAs: 'http' | 'event' = 'http';
  readonly #server: http.Server;
  readonly #sockets = new Set<Socket>();
  readonly #open = new Set<OpenWatch>();
  readonly #objects = new Map<string, V1EndpointSlice>();
  #history: HistoryEvent[] = [];
  #rv = 100;
  /** Watches from a version below this get 410 Gone. */
  #oldestRv = 100;
  #uid = 0;
  #port = 0;
  #paused = false;
  #failStatus: number | undefined;

  private constructor() {
    this.#server = http.createServer((request, response) => this.#handle(request, response));
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  static async start(): Promise<FakeKubeApi> {
    const api = new FakeKubeApi();
    await api.#listen(0);
    return api;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  get openWatches(): number {
    return this.#open.size;
  }

  /** A KubeConfig that reaches this server, built in code. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** The same as a kubeconfig file in a new temporary directory; returns its path. */
  async writeKubeconfig(): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), 'fake-kube-'));
    const file = path.join(dir, 'kubeconfig.json');
    // JSON is YAML, and the library parses kubeconfig files as YAML.
    await writeFile(file, JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      // The library refuses http:// unless told to skip TLS verification.
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: {} }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'u' } }],
      'current-context': 'fake',
    }));
    return file;
  }

  /** Creates or replaces a slice (namespace `default` unless its metadata says otherwise); open watches get ADDED or MODIFIED. */
  apply(slice: V1EndpointSlice): V1EndpointSlice {
    const namespace = slice.metadata?.namespace ?? 'default';
    const name = slice.metadata?.name;
    if (!name) throw new Error('a slice needs metadata.name');
    const key = `${namespace}/${name}`;
    const before = this.#objects.get(key);
    const rv = ++this.#rv;
    const after: V1EndpointSlice = structuredClone({
      kind: 'EndpointSlice',
      apiVersion: API_VERSION,
      ...slice,
      metadata: {
        ...slice.metadata,
        name,
        namespace,
        uid: before?.metadata?.uid ?? `uid-${++this.#uid}`,
        generation: (before?.metadata?.generation ?? 0) + 1,
        resourceVersion: String(rv),
      },
    });
    this.#objects.set(key, after);
    this.#record({ rv, type: before ? 'MODIFIED' : 'ADDED', before, after });
    return after;
  }

  /** Deletes a slice; open watches get DELETED. False if there was none. */
  delete(name: string, namespace = 'default'): boolean {
    const key = `${namespace}/${name}`;
    const before = this.#objects.get(key);
    if (!before) return false;
    this.#objects.delete(key);
    const rv = ++this.#rv;
    const after = structuredClone({ ...before, metadata: { ...before.metadata, resourceVersion: String(rv) } });
    this.#record({ rv, type: 'DELETED', before, after });
    return true;
  }

  /** Sends a BOOKMARK with the current resourceVersion to every open watch that allowed bookmarks. */
  bookmark(): void {
    const event = { type: 'BOOKMARK', object: { kind: 'EndpointSlice', apiVersion: API_VERSION, metadata: { resourceVersion: String(this.#rv) } } };
    for (const watch of this.#open) if (watch.bookmarks) this.#write(watch, event);
  }

  /** Compaction: forget the history, so a watch from any version before the current one is answered 410 Gone. */
  expireHistory(): void {
    this.#history = [];
    this.#oldestRv = this.#rv;
  }

  /** Ends every open watch with an ERROR event carrying a 410 Status, as a server does to a watcher that fell too far behind. */
  sendGoneToOpenWatches(): void {
    for (const watch of [...this.#open]) {
      this.#writeRaw(watch.response, { type: 'ERROR', object: statusObject(410, 'Expired', `too old resource version: (${this.#oldestRv})`) });
      this.#open.delete(watch);
      watch.response.end();
    }
  }

  /** Stops (true) or resumes (false) writing events to open watches: a stalled connection. Events still enter the history. */
  pauseDelivery(paused: boolean): void {
    this.#paused = paused;
  }

  /** Closes every open watch: `destroy` resets the TCP connection, `end` ends the response cleanly (as a server timeout does). */
  dropWatches(how: 'destroy' | 'end' = 'destroy'): number {
    const dropped = this.#open.size;
    for (const watch of [...this.#open]) {
      this.#open.delete(watch);
      if (how === 'end') watch.response.end();
      else watch.response.socket?.destroy();
    }
    return dropped;
  }

  /** Answers every list and watch with this HTTP status (and a Status body) until called with undefined. */
  failRequests(status: number | undefined): void {
    this.#failStatus = status;
  }

  /** The API server goes away: no listener, every connection reset. State is kept for restart(). */
  async stop(): Promise<void> {
    this.#open.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  /** Listens again on the same port. */
  async restart(): Promise<void> {
    await this.#listen(this.#port);
  }

  async close(): Promise<void> {
    if (this.#server.listening) await this.stop();
  }

  async #listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as { port: number }).port;
  }

  #handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const url = new URL(request.url ?? '/', 'http://fake');
    const match = PATH.exec(url.pathname);
    if (request.method !== 'GET' || !match) {
      this.#json(response, 404, statusObject(404, 'NotFound', `the server could not find the requested resource (${request.method} ${url.pathname})`));
      return;
    }
    const namespace = decodeURIComponent(match[1]!);
    const labelSelector = url.searchParams.get('labelSelector') ?? undefined;
    const selector = parseSelector(url.searchParams.get('labelSelector'));
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
      this.#watch(request, response, url, namespace, labelSelector, selector);
      return;
    }
    if (this.#failStatus !== undefined) {
      this.lists.push({ at: performance.now(), namespace, labelSelector, resourceVersion: '' });
      this.#json(response, this.#failStatus, statusObject(this.#failStatus, 'InternalError', 'the fake API server was told to fail'));
      return;
    }
    const resourceVersion = String(this.#rv);
    this.lists.push({ at: performance.now(), namespace, labelSelector, resourceVersion });
    const items = [...this.#objects.values()].filter((slice) => slice.metadata?.namespace === namespace && selector(slice.metadata?.labels));
    this.#json(response, 200, { kind: 'EndpointSliceList', apiVersion: API_VERSION, metadata: { resourceVersion }, items });
  }

  #watch(request: http.IncomingMessage, response: http.ServerResponse, url: URL, namespace: string, labelSelector: string | undefined, selector: Selector): void {
    const rvParam = url.searchParams.get('resourceVersion') ?? undefined;
    const bookmarks = url.searchParams.get('allowWatchBookmarks') === 'true';
    const record = (answer: WatchRecord['answer']) =>
      this.watches.push({ at: performance.now(), namespace, labelSelector, resourceVersion: rvParam, allowWatchBookmarks: bookmarks, answer });
    if (this.#failStatus !== undefined) {
      record('failed');
      this.#json(response, this.#failStatus, statusObject(this.#failStatus, 'InternalError', 'the fake API server was told to fail'));
      return;
    }
    const fromRv = rvParam === undefined || rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (fromRv !== undefined && (!Number.isInteger(fromRv) || fromRv < this.#oldestRv)) {
      const gone = statusObject(410, 'Expired', `too old resource version: ${rvParam} (${this.#oldestRv})`);
      if (this.goneAs === 'http') {
        record('gone-http');
        this.#json(response, 410, gone);
      } else {
        record('gone-event');
        response.writeHead(200, { 'content-type': 'application/json' });
        this.#writeRaw(response, { type: 'ERROR', object: gone });
        response.end();
      }
      return;
    }
    record('stream');
    response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    response.flushHeaders();
    const watch: OpenWatch = { namespace, selector, bookmarks, response };
    if (fromRv === undefined) {
      for (const slice of this.#objects.values()) {
        if (slice.metadata?.namespace === namespace && selector(slice.metadata?.labels)) this.#writeRaw(response, { type: 'ADDED', object: slice });
      }
    } else {
      for (const event of this.#history) if (event.rv > fromRv) this.#send(watch, event);
    }
    this.#open.add(watch);
    const forget = () => this.#open.delete(watch);
    request.on('close', forget);
    response.on('close', forget);
  }

  #record(event: HistoryEvent): void {
    this.#history.push(event);
    if (this.#paused) return;
    for (const watch of this.#open) this.#send(watch, event);
  }

  /** The event as this watcher sees it, given its namespace and selector. */
  #send(watch: OpenWatch, event: HistoryEvent): void {
    if (event.after.metadata?.namespace !== watch.namespace) return;
    const matchedBefore = event.before !== undefined && watch.selector(event.before.metadata?.labels);
    const matchesAfter = event.type !== 'DELETED' && watch.selector(event.after.metadata?.labels);
    if (event.type === 'DELETED') {
      if (matchedBefore) this.#write(watch, { type: 'DELETED', object: event.after });
    } else if (matchesAfter) {
      this.#write(watch, { type: matchedBefore ? 'MODIFIED' : 'ADDED', object: event.after });
    } else if (matchedBefore) {
      this.#write(watch, { type: 'DELETED', object: event.after });
    }
  }

  #write(watch: OpenWatch, event: unknown): void {
    this.#writeRaw(watch.response, event);
  }

  #writeRaw(response: http.ServerResponse, event: unknown): void {
    if (!response.writableEnded && !response.destroyed) response.write(`${JSON.stringify(event)}\n`);
  }

  #json(response: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    response.end(text);
  }
}

/** One endpoint of a slice, in the test's shorthand. */
export interface SliceEndpoint {
  readonly ip: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
  readonly zone?: string;
}

/** An EndpointSlice of `service` as the EndpointSlice controller writes it. */
export function endpointSlice(
  name: string,
  service: string,
  endpoints: readonly (string | SliceEndpoint)[],
  options: { namespace?: string; ports?: readonly { name?: string; port?: number; protocol?: string }[]; addressType?: 'IPv4' | 'IPv6' | 'FQDN' } = {},
): V1EndpointSlice {
  return {
    addressType: options.addressType ?? 'IPv4',
    metadata: {
      name,
      namespace: options.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    ports: (options.ports ?? [{ name: 'grpc', port: 50051, protocol: 'TCP' }]).map((port) => ({ ...port })),
    endpoints: endpoints.map((entry) => {
      const endpoint = typeof entry === 'string' ? { ip: entry } : entry;
      const ready = endpoint.ready ?? true;
      return {
        addresses: [endpoint.ip],
        conditions: { ready, serving: endpoint.serving ?? ready, terminating: endpoint.terminating ?? false },
        ...(endpoint.zone !== undefined && { zone: endpoint.zone }),
      };
    }),
  };
}
