/**
 * A raw ADS client for tests: opens state-of-the-world or delta streams to
 * an xDS server, sends exactly the requests a test asks for (nothing is
 * ACKed for you), and hands back responses with their resources decoded.
 *
 *   const ads = new AdsTestClient({ port, ca: pki.caCertPem, cert: id.certPem, key: id.keyPem });
 *   const stream = ads.sotw({ id: 'frontend-1', cluster: 'frontend' });
 *   stream.request({ typeUrl: TYPE_URL.cluster });                 // first request: carries the node; no names = wildcard
 *   const cds = await stream.next(TYPE_URL.cluster);               // waits (default 5 s) for the next CDS response
 *   cds.names;                                                     // ['echo'], sorted; cds.resources[0].message is the decoded Cluster
 *   stream.ack(cds);                                               // same names, cds.versionInfo, cds.nonce
 *   stream.nack(cds, 'bad cluster');                               // error_detail set, version_info = last ACKed
 *   stream.request({ typeUrl: TYPE_URL.endpoint, names: ['echo'] });   // version and nonce default to the last ACK/nonce of that type
 *   const status = await stream.closed;                            // the stream's final status (never rejects)
 *   ads.close();
 *
 *   const delta = ads.delta({ id: 'frontend-1' });
 *   delta.request({ typeUrl: TYPE_URL.endpoint, subscribe: ['echo'], initialVersions: { echo: 'v1' } });
 *   const eds = await delta.next(TYPE_URL.endpoint);              // eds.resources[i].version, eds.removed
 *   delta.ack(eds);                                               // only the nonce (a delta ACK carries no names)
 *
 * `next(typeUrl?)` returns responses in arrival order, keeping responses of
 * other types queued for their own next(); `next()` without a type takes the
 * oldest of any type (use it to check ordering). `responses` holds every
 * response received. Certificates: `ca` verifies the server, whose
 * certificate is checked for `serverName` (default localhost, as
 * test/helpers/certs.ts issues it) while connecting to 127.0.0.1; omit
 * `cert`/`key` for a TLS client without a certificate, or pass
 * `insecure: true` for plaintext.
 */
import * as grpc from '@grpc/grpc-js';
import { adsService, unpackAny, type AnyMessage } from '../../src/xds/protos.ts';

export interface AdsTestClientOptions {
  readonly port: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** The name the server certificate is checked against (TLS only). Default localhost. */
  readonly serverName?: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly insecure?: boolean;
  /** Overrides ca/cert/key/insecure. */
  readonly credentials?: grpc.ChannelCredentials;
  /** How long next() waits by default. Default 5000 ms. */
  readonly timeoutMs?: number;
}

export interface TestNode {
  readonly id: string;
  readonly cluster?: string;
  /** "switchyard" for Switchyard proxies; anything else is treated as a gRPC client. */
  readonly user_agent_name?: string;
}

export interface DecodedResource {
  readonly name: string;
  /** Delta only: the resource's version. */
  readonly version?: string;
  /** The resource, decoded (snake_case, enums as names). */
  readonly message: Record<string, unknown>;
  readonly any: AnyMessage;
}

export interface SotwResponse {
  readonly typeUrl: string;
  readonly versionInfo: string;
  readonly nonce: string;
  readonly resources: readonly DecodedResource[];
  /** Resource names, sorted. */
  readonly names: readonly string[];
  readonly controlPlane: string | undefined;
}

export interface DeltaResponse {
  readonly typeUrl: string;
  readonly systemVersionInfo: string;
  readonly nonce: string;
  readonly resources: readonly DecodedResource[];
  readonly names: readonly string[];
  /** removed_resources, sorted. */
  readonly removed: readonly string[];
  /** name → version of the resources in this response. */
  readonly versions: Readonly<Record<string, string>>;
}

export class AdsTestClient {
  readonly #client: grpc.Client & Record<string, (...args: unknown[]) => grpc.ClientDuplexStream<unknown, unknown>>;
  readonly #timeoutMs: number;

  constructor(options: AdsTestClientOptions) {
    const { Client } = adsService();
    const credentials = options.credentials
      ?? (options.insecure ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(options.ca ?? null, options.key ?? null, options.cert ?? null));
    const channelOptions: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };
    if (!options.insecure) channelOptions['grpc.ssl_target_name_override'] = options.serverName ?? 'localhost';
    this.#client = new Client(`${options.host ?? '127.0.0.1'}:${options.port}`, credentials, channelOptions) as never;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
  }

  /** A StreamAggregatedResources stream whose first request will carry `node`. */
  sotw(node: TestNode): SotwTestStream {
    return new SotwTestStream(this.#client.StreamAggregatedResources!(), node, this.#timeoutMs);
  }

  /** A DeltaAggregatedResources stream whose first request will carry `node`. */
  delta(node: TestNode): DeltaTestStream {
    return new DeltaTestStream(this.#client.DeltaAggregatedResources!(), node, this.#timeoutMs);
  }

  close(): void {
    this.#client.close();
  }
}

interface Waiter<T> {
  readonly typeUrl: string | undefined;
  readonly resolve: (response: T) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

abstract class TestStream<T extends { readonly typeUrl: string }> {
  /** Every response received, in order. */
  readonly responses: T[] = [];
  /** The final status; resolves when the stream ends, however it ends. */
  readonly closed: Promise<grpc.StatusObject>;
  protected readonly call: grpc.ClientDuplexStream<unknown, unknown>;
  protected readonly node: TestNode;
  protected sentFirst = false;
  readonly #queue: T[] = [];
  readonly #waiters: Waiter<T>[] = [];
  readonly #timeoutMs: number;
  #status: grpc.StatusObject | undefined;

  constructor(call: grpc.ClientDuplexStream<unknown, unknown>, node: TestNode, timeoutMs: number) {
    this.call = call;
    this.node = node;
    this.#timeoutMs = timeoutMs;
    call.on('data', (message: unknown) => {
      const response = this.decode(message as Record<string, unknown>);
      this.responses.push(response);
      const index = this.#waiters.findIndex((w) => w.typeUrl === undefined || w.typeUrl === response.typeUrl);
      if (index >= 0) {
        const [waiter] = this.#waiters.splice(index, 1);
        clearTimeout(waiter!.timer);
        waiter!.resolve(response);
      } else {
        this.#queue.push(response);
      }
    });
    call.on('error', () => {}); // the status below says it all
    this.closed = new Promise((resolve) => {
      call.on('status', (status: grpc.StatusObject) => {
        this.#status = status;
        for (const waiter of this.#waiters.splice(0)) {
          clearTimeout(waiter.timer);
          waiter.reject(new Error(`stream ended (${grpc.status[status.code]}: ${status.details}) while waiting for ${waiter.typeUrl ?? 'a response'}`));
        }
        resolve(status);
      });
    });
  }

  protected abstract decode(message: Record<string, unknown>): T;

  /** The next response not yet taken (of `typeUrl`, if given), waiting up to `timeoutMs`. */
  next(typeUrl?: string, timeoutMs = this.#timeoutMs): Promise<T> {
    const index = this.#queue.findIndex((r) => typeUrl === undefined || r.typeUrl === typeUrl);
    if (index >= 0) return Promise.resolve(this.#queue.splice(index, 1)[0]!);
    if (this.#status) return Promise.reject(new Error(`stream already ended (${grpc.status[this.#status.code]}: ${this.#status.details})`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.#waiters.findIndex((w) => w.timer === timer);
        if (at >= 0) this.#waiters.splice(at, 1);
        reject(new Error(`no ${typeUrl ?? 'response'} within ${timeoutMs} ms (queued: ${this.#queue.map((r) => r.typeUrl).join(', ') || 'none'})`));
      }, timeoutMs);
      this.#waiters.push({ typeUrl, resolve, reject, timer });
    });
  }

  /** Responses received and not yet taken by next(). */
  queued(typeUrl?: string): readonly T[] {
    return this.#queue.filter((r) => typeUrl === undefined || r.typeUrl === typeUrl);
  }

  /** Half-closes the stream (the server then ends it with OK). */
  end(): void {
    this.call.end();
  }

  cancel(): void {
    this.call.cancel();
  }

  protected send(message: Record<string, unknown>, node: TestNode | undefined): void {
    const withNode = node ?? (this.sentFirst ? undefined : this.node);
    this.sentFirst = true;
    this.call.write(withNode ? { ...message, node: withNode } : message);
  }
}

export interface SotwRequestOptions {
  readonly typeUrl: string;
  /** resource_names; default [] (for Listener and Cluster: a wildcard on a first request). */
  readonly names?: readonly string[];
  /** Default: the version last ACKed for this type by ack() ('' before any). */
  readonly versionInfo?: string;
  /** Default: the nonce of the last response of this type received ('' before any). */
  readonly nonce?: string;
  /** Sets error_detail (a NACK). */
  readonly error?: string;
  /** Default: the stream's node on its first request, none after. */
  readonly node?: TestNode;
}

export class SotwTestStream extends TestStream<SotwResponse> {
  readonly #names = new Map<string, readonly string[]>();
  readonly #acked = new Map<string, string>();

  request(options: SotwRequestOptions): void {
    const names = options.names ?? [];
    this.#names.set(options.typeUrl, names);
    this.send({
      type_url: options.typeUrl,
      resource_names: names,
      version_info: options.versionInfo ?? this.#acked.get(options.typeUrl) ?? '',
      response_nonce: options.nonce ?? this.#lastNonce(options.typeUrl),
      ...(options.error !== undefined && { error_detail: { code: grpc.status.INVALID_ARGUMENT, message: options.error } }),
    }, options.node);
  }

  /** ACKs `response`: the type's current names, its version_info and nonce. */
  ack(response: SotwResponse, names?: readonly string[]): void {
    this.#acked.set(response.typeUrl, response.versionInfo);
    this.request({ typeUrl: response.typeUrl, names: names ?? this.#names.get(response.typeUrl) ?? [], versionInfo: response.versionInfo, nonce: response.nonce });
  }

  /** NACKs `response`: its nonce, the last ACKed version, and error_detail. */
  nack(response: SotwResponse, message: string): void {
    this.request({ typeUrl: response.typeUrl, names: this.#names.get(response.typeUrl) ?? [], nonce: response.nonce, error: message });
  }

  #lastNonce(typeUrl: string): string {
    return this.responses.findLast((r) => r.typeUrl === typeUrl)?.nonce ?? '';
  }

  protected decode(message: Record<string, unknown>): SotwResponse {
    const resources = ((message.resources as AnyMessage[] | undefined) ?? []).map((any) => {
      const decoded = unpackAny(any);
      return { name: String(decoded.name ?? decoded.cluster_name ?? ''), message: decoded, any };
    });
    return {
      typeUrl: String(message.type_url ?? ''),
      versionInfo: String(message.version_info ?? ''),
      nonce: String(message.nonce ?? ''),
      resources,
      names: resources.map((r) => r.name).sort(),
      controlPlane: (message.control_plane as { identifier?: string } | undefined)?.identifier,
    };
  }
}

export interface DeltaRequestOptions {
  readonly typeUrl: string;
  readonly subscribe?: readonly string[];
  readonly unsubscribe?: readonly string[];
  readonly initialVersions?: Readonly<Record<string, string>>;
  /** Default '' (a spontaneous request). */
  readonly nonce?: string;
  readonly error?: string;
  readonly node?: TestNode;
}

export class DeltaTestStream extends TestStream<DeltaResponse> {
  request(options: DeltaRequestOptions): void {
    this.send({
      type_url: options.typeUrl,
      resource_names_subscribe: options.subscribe ?? [],
      resource_names_unsubscribe: options.unsubscribe ?? [],
      initial_resource_versions: options.initialVersions ?? {},
      response_nonce: options.nonce ?? '',
      ...(options.error !== undefined && { error_detail: { code: grpc.status.INVALID_ARGUMENT, message: options.error } }),
    }, options.node);
  }

  ack(response: DeltaResponse): void {
    this.request({ typeUrl: response.typeUrl, nonce: response.nonce });
  }

  nack(response: DeltaResponse, message: string): void {
    this.request({ typeUrl: response.typeUrl, nonce: response.nonce, error: message });
  }

  protected decode(message: Record<string, unknown>): DeltaResponse {
    const raw = (message.resources as { name?: string; version?: string; resource?: AnyMessage }[] | undefined) ?? [];
    const resources = raw.map((entry) => ({
      name: entry.name ?? '',
      version: entry.version ?? '',
      message: entry.resource ? unpackAny(entry.resource) : {},
      any: entry.resource ?? { type_url: '', value: Buffer.alloc(0) },
    }));
    return {
      typeUrl: String(message.type_url ?? ''),
      systemVersionInfo: String(message.system_version_info ?? ''),
      nonce: String(message.nonce ?? ''),
      resources,
      names: resources.map((r) => r.name).sort(),
      removed: [...((message.removed_resources as string[] | undefined) ?? [])].sort(),
      versions: Object.fromEntries(resources.map((r) => [r.name, r.version])),
    };
  }
}
