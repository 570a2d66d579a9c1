/**
 * A fake Kubernetes API server: a real HTTP server on 127.0.0.1 speaking the
 * API's list/watch protocol for any resource type
 * (`GET /apis/{group}/{version}[/namespaces/{ns}]/{plural}`, and `/api/v1/…`
 * for the core group), plus reads, creates and replaces of single objects and
 * JSON merge patches of the status subresource.
 *
 * No cluster can run on the machines these tests run on, so this is what the
 * Kubernetes sources (EndpointSlices, the Gateway API) and the Gateway API
 * status writer and leader election are tested against. What it implements,
 * as a real API server does:
 *
 * - One resourceVersion counter for every change in every namespace (etcd's
 *   revision); objects carry the version of their last change, a list
 *   carries the current one.
 * - `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma = and) on lists
 *   and watches; a list or watch without a namespace in its path sees every
 *   namespace.
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
 * - metadata.generation moves only when an object's spec changes (every
 *   change for objects without a spec, such as EndpointSlices); status is kept
 *   across applies and changed only through `PATCH …/status`
 *   (application/merge-patch+json). A PATCH, or a PUT, carrying
 *   metadata.resourceVersion fails with 409 Conflict when the object has
 *   changed since (optimistic concurrency, as Leases and status writers use).
 * - creationTimestamp is set at creation (whole seconds); a test may give one
 *   to order objects by age.
 *
 * Test controls: apply/delete objects, bookmarks, expiry, dropping watch
 * connections (abruptly or cleanly), pausing delivery (a stalled watch),
 * failing lists and watches with an HTTP status, stopping and restarting the
 * server on the same port, and a log of every list, watch and status patch.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeConfig, type V1EndpointSlice } from '@kubernetes/client-node';

import { KINDS, apiVersionOf, labelsOf, mergePatch, parsePath, parseSelector, statusObject, type KubeObject, type ParsedPath, type ResourceInfo, type Selector } from './fake-kube-protocol.ts';

export type { KubeObject } from './fake-kube-protocol.ts';

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEvent {
  readonly rv: number;
  readonly type: EventType;
  readonly resource: ResourceInfo;
  /** The object before the change (undefined for ADDED). */
  readonly before: KubeObject | undefined;
  /** The object after the change; for DELETED, the last state with the deletion's resourceVersion. */
  readonly after: KubeObject;
}

interface OpenWatch {
  readonly resource: ResourceInfo;
  readonly namespace: string | undefined;
  readonly selector: Selector;
  readonly bookmarks: boolean;
  readonly response: http.ServerResponse;
}

export interface ListRecord {
  readonly at: number;
  /** '' when the list spans every namespace. */
  readonly namespace: string;
  readonly resource: string;
  readonly labelSelector: string | undefined;
  /** The resourceVersion the list answered with. */
  readonly resourceVersion: string;
}

export interface WatchRecord {
  readonly at: number;
  readonly namespace: string;
  readonly resource: string;
  readonly labelSelector: string | undefined;
  readonly resourceVersion: string | undefined;
  readonly allowWatchBookmarks: boolean;
  /** How it was answered. */
  readonly answer: 'stream' | 'gone-http' | 'gone-event' | 'failed';
}

export interface PatchRecord {
  readonly at: number;
  readonly kind: string;
  readonly namespace: string | undefined;
  readonly name: string;
  readonly body: Record<string, unknown>;
  /** The HTTP status it was answered with. */
  readonly status: number;
}

export class FakeKubeApi {
  readonly lists: ListRecord[] = [];
  readonly watches: WatchRecord[] = [];
  readonly patches: PatchRecord[] = [];
  /** How a watch from an expired resourceVersion is refused. */
  goneAs: 'http' | 'event' = 'http';
  readonly #server: http.Server;
  readonly #sockets = new Set<Socket>();
  readonly #open = new Set<OpenWatch>();
  readonly #objects = new Map<string, KubeObject>();
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

  /**
   * Creates or replaces an object (an EndpointSlice when it names no kind; namespace `default`
   * unless its metadata says otherwise or the kind is cluster-scoped); open watches get ADDED or
   * MODIFIED. Its status is kept from before unless the object carries one.
   */
  apply<T extends KubeObject | V1EndpointSlice>(object: T): T {
    const info = KINDS[(object as KubeObject).kind ?? 'EndpointSlice'];
    if (!info) throw new Error(`the fake API server does not know kind ${String((object as KubeObject).kind)}`);
    const given = (object as KubeObject).metadata ?? {};
    const name = given.name;
    if (!name) throw new Error('an object needs metadata.name');
    const namespace = info.namespaced ? given.namespace ?? 'default' : undefined;
    const key = this.#key(info, namespace, name);
    const before = this.#objects.get(key);
    const rv = ++this.#rv;
    const previousMeta = (before?.metadata ?? {}) as Record<string, unknown>;
    const specChanged = !('spec' in object) || before === undefined || JSON.stringify(before.spec) !== JSON.stringify((object as KubeObject).spec);
    const after = structuredClone({
      kind: info.kind,
      apiVersion: apiVersionOf(info),
      ...(before?.status !== undefined && { status: before.status }),
      ...(object as KubeObject),
      metadata: {
        ...given,
        name,
        ...(namespace !== undefined && { namespace }),
        uid: previousMeta.uid ?? `uid-${++this.#uid}`,
        generation: ((previousMeta.generation as number | undefined) ?? 0) + (specChanged ? 1 : 0),
        resourceVersion: String(rv),
        creationTimestamp: previousMeta.creationTimestamp ?? given.creationTimestamp ?? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
    }) as KubeObject;
    this.#objects.set(key, after);
    this.#record({ rv, type: before ? 'MODIFIED' : 'ADDED', resource: info, before, after });
    return after as T;
  }

  /** Deletes an object (an EndpointSlice unless `kind` says otherwise); open watches get DELETED. False if there was none. */
  delete(name: string, namespace = 'default', kind = 'EndpointSlice'): boolean {
    const info = KINDS[kind]!;
    const key = this.#key(info, info.namespaced ? namespace : undefined, name);
    const before = this.#objects.get(key);
    if (!before) return false;
    this.#objects.delete(key);
    const rv = ++this.#rv;
    const after = structuredClone({ ...before, metadata: { ...before.metadata, resourceVersion: String(rv) } });
    this.#record({ rv, type: 'DELETED', resource: info, before, after });
    return true;
  }

  /** The object as the server holds it now, or undefined. */
  get(kind: string, name: string, namespace = 'default'): KubeObject | undefined {
    const info = KINDS[kind];
    if (!info) return undefined;
    const object = this.#objects.get(this.#key(info, info.namespaced ? namespace : undefined, name));
    return object && structuredClone(object);
  }

  /** Sends a BOOKMARK with the current resourceVersion to every open watch that allowed bookmarks. */
  bookmark(): void {
    for (const watch of this.#open) {
      if (watch.bookmarks) this.#writeRaw(watch.response, { type: 'BOOKMARK', object: { kind: watch.resource.kind, apiVersion: apiVersionOf(watch.resource), metadata: { resourceVersion: String(this.#rv) } } });
    }
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

  #key(info: ResourceInfo, namespace: string | undefined, name: string): string {
    return `${info.group}/${info.plural}|${namespace ?? ''}|${name}`;
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
    const parsed = parsePath(url.pathname);
    const notFound = () => this.#json(response, 404, statusObject(404, 'NotFound', `the server could not find the requested resource (${request.method} ${url.pathname})`));
    if (!parsed) return notFound();
    if (request.method !== 'GET') {
      let text = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => { text += chunk; });
      request.on('end', () => this.#write(request, response, parsed, text));
      return;
    }
    if (parsed.name !== undefined) {
      const object = this.#objects.get(this.#key(parsed.info, parsed.namespace, parsed.name));
      if (!object) return this.#json(response, 404, statusObject(404, 'NotFound', `${parsed.info.plural} "${parsed.name}" not found`));
      return this.#json(response, 200, object);
    }
    const labelSelector = url.searchParams.get('labelSelector') ?? undefined;
    const selector = parseSelector(url.searchParams.get('labelSelector'));
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
      this.#watch(request, response, url, parsed, labelSelector, selector);
      return;
    }
    const namespace = parsed.namespace ?? '';
    const resource = parsed.info.plural;
    if (this.#failStatus !== undefined) {
      this.lists.push({ at: performance.now(), namespace, resource, labelSelector, resourceVersion: '' });
      this.#json(response, this.#failStatus, statusObject(this.#failStatus, 'InternalError', 'the fake API server was told to fail'));
      return;
    }
    const resourceVersion = String(this.#rv);
    this.lists.push({ at: performance.now(), namespace, resource, labelSelector, resourceVersion });
    const items = [...this.#objects.values()].filter((object) => this.#visible(object, parsed.info, parsed.namespace) && selector(labelsOf(object)));
    this.#json(response, 200, { kind: `${parsed.info.kind}List`, apiVersion: apiVersionOf(parsed.info), metadata: { resourceVersion }, items });
  }

  /** POST (create), PUT (replace) and PATCH of the status subresource (merge patch). */
  #write(request: http.IncomingMessage, response: http.ServerResponse, parsed: ParsedPath, text: string): void {
    let body: KubeObject;
    try {
      body = JSON.parse(text) as KubeObject;
    } catch {
      return this.#json(response, 400, statusObject(400, 'BadRequest', 'the body is not JSON'));
    }
    const { info } = parsed;
    const namespace = info.namespaced ? parsed.namespace : undefined;
    if (request.method === 'POST' && parsed.name === undefined) {
      const name = body.metadata?.name ?? '';
      if (this.#objects.has(this.#key(info, namespace, name))) return this.#json(response, 409, statusObject(409, 'AlreadyExists', `${info.plural} "${name}" already exists`));
      return this.#json(response, 201, this.apply({ ...body, kind: info.kind, metadata: { ...body.metadata, name, ...(namespace !== undefined && { namespace }) } }));
    }
    if (parsed.name === undefined) return this.#json(response, 405, statusObject(405, 'MethodNotAllowed', `${request.method} on a collection`));
    const key = this.#key(info, namespace, parsed.name);
    const current = this.#objects.get(key);
    const record = (status: number) => this.patches.push({ at: performance.now(), kind: info.kind, namespace, name: parsed.name!, body, status });
    if (!current) {
      if (request.method === 'PATCH') record(404);
      return this.#json(response, 404, statusObject(404, 'NotFound', `${info.plural} "${parsed.name}" not found`));
    }
    const expected = body.metadata?.resourceVersion;
    if (expected !== undefined && expected !== '' && expected !== current.metadata?.resourceVersion) {
      if (request.method === 'PATCH') record(409);
      return this.#json(response, 409, statusObject(409, 'Conflict', `the object has been modified; please apply your changes to the latest version (${String(expected)} → ${String(current.metadata?.resourceVersion)})`));
    }
    if (request.method === 'PUT' && parsed.subresource === undefined) {
      return this.#json(response, 200, this.apply({ ...body, kind: info.kind, metadata: { ...current.metadata, ...body.metadata, name: parsed.name } }));
    }
    if (request.method === 'PATCH' && parsed.subresource === 'status') {
      if (!String(request.headers['content-type']).startsWith('application/merge-patch+json')) {
        record(415);
        return this.#json(response, 415, statusObject(415, 'UnsupportedMediaType', `the fake takes merge patches only, got ${String(request.headers['content-type'])}`));
      }
      const rv = ++this.#rv;
      const after = structuredClone({ ...current, status: mergePatch(current.status, body.status), metadata: { ...current.metadata, resourceVersion: String(rv) } }) as KubeObject;
      this.#objects.set(key, after);
      this.#record({ rv, type: 'MODIFIED', resource: info, before: current, after });
      record(200);
      return this.#json(response, 200, after);
    }
    return this.#json(response, 405, statusObject(405, 'MethodNotAllowed', `${request.method} ${parsed.subresource ?? ''} is not supported by the fake`));
  }

  #visible(object: KubeObject, info: ResourceInfo, namespace: string | undefined): boolean {
    return object.kind === info.kind && (namespace === undefined || object.metadata?.namespace === namespace);
  }

  #watch(request: http.IncomingMessage, response: http.ServerResponse, url: URL, parsed: ParsedPath, labelSelector: string | undefined, selector: Selector): void {
    const rvParam = url.searchParams.get('resourceVersion') ?? undefined;
    const bookmarks = url.searchParams.get('allowWatchBookmarks') === 'true';
    const record = (answer: WatchRecord['answer']) =>
      this.watches.push({ at: performance.now(), namespace: parsed.namespace ?? '', resource: parsed.info.plural, labelSelector, resourceVersion: rvParam, allowWatchBookmarks: bookmarks, answer });
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
    const watch: OpenWatch = { resource: parsed.info, namespace: parsed.namespace, selector, bookmarks, response };
    if (fromRv === undefined) {
      for (const object of this.#objects.values()) {
        if (this.#visible(object, parsed.info, parsed.namespace) && selector(labelsOf(object))) this.#writeRaw(response, { type: 'ADDED', object });
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

  /** The event as this watcher sees it, given its resource, namespace and selector. */
  #send(watch: OpenWatch, event: HistoryEvent): void {
    if (event.resource !== watch.resource) return;
    if (watch.namespace !== undefined && event.after.metadata?.namespace !== watch.namespace) return;
    const matchedBefore = event.before !== undefined && watch.selector(labelsOf(event.before));
    const matchesAfter = event.type !== 'DELETED' && watch.selector(labelsOf(event.after));
    if (event.type === 'DELETED') {
      if (matchedBefore) this.#writeRaw(watch.response, { type: 'DELETED', object: event.after });
    } else if (matchesAfter) {
      this.#writeRaw(watch.response, { type: matchedBefore ? 'MODIFIED' : 'ADDED', object: event.after });
    } else if (matchedBefore) {
      this.#writeRaw(watch.response, { type: 'DELETED', object: event.after });
    }
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
