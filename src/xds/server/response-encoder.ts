/**
 * Encodes DiscoveryResponse and DeltaDiscoveryResponse messages from
 * resources that are serialised once and shared by every stream.
 *
 * A resource version is an immutable XdsResource object, so its wire form
 * (the repeated `resources` entry: tag, length, Any) is computed the first
 * time any stream sends it and kept beside the object (a WeakMap: it goes
 * when the provider drops the resource). A whole response (version, entries,
 * type URL, control plane, nonce) is cached too, keyed by what it carries, so
 * a push of one change to 10,000 streams holding the same versions builds
 * one message and writes the same bytes to every stream: the nonce is the
 * response's, not the stream's. A nonce only has to tell a stream's own
 * responses apart; the one time a stream would get the same message twice in
 * a row (its previous response, offered again after a NACK) it gets a copy
 * with a nonce of its own.
 *
 * Field numbers: envoy/service/discovery/v3/discovery.proto.
 */
import type { AnyMessage } from '../protos.ts';
import type { XdsResource } from '../snapshot.ts';

/** A response as written: its bytes (possibly shared with other streams) and its nonce. */
export interface EncodedResponse {
  /** The gRPC message frame: a 5-byte prefix (uncompressed, length), then the message. */
  readonly framed: Buffer;
  /** The message alone (a view into `framed`). */
  readonly bytes: Buffer;
  readonly nonce: string;
}

export interface EncoderStats {
  /** Resource entries serialised (each resource version once per protocol). */
  resourceEncodings: number;
  /** Responses built (the rest of those written were shared). */
  bodyEncodings: number;
}

const LENGTH_DELIMITED = 2;
/** Bodies kept for sharing; each push needs a handful (one per distinct response), so this is generous. */
const MAX_CACHED_BODIES = 512;

export class ResponseEncoder {
  readonly stats: EncoderStats = { resourceEncodings: 0, bodyEncodings: 0 };
  readonly #sotwEntries = new WeakMap<XdsResource, Buffer>();
  readonly #deltaEntries = new WeakMap<XdsResource, Buffer>();
  readonly #messages = new Map<string, EncodedResponse>();
  #nonces = 0;
  readonly #controlPlane: Buffer;

  /** `controlPlaneId`: sent as control_plane.identifier in every response. */
  constructor(controlPlaneId: string | undefined) {
    this.#controlPlane = controlPlaneId === undefined ? Buffer.alloc(0) : field(6, field(1, Buffer.from(controlPlaneId)));
  }

  /**
   * A DiscoveryResponse: version_info, the resources, type_url, nonce.
   * `previousNonce` is the nonce of the stream's last response of this type:
   * the answer never reuses it.
   */
  sotw(typeUrl: string, version: string, resources: readonly XdsResource[], previousNonce: string): EncodedResponse {
    return this.#message('s', typeUrl, version, resources, [], previousNonce, (nonce) => [
      field(1, Buffer.from(version)),
      ...resources.map((resource) => this.#sotwEntry(resource)),
      field(4, Buffer.from(typeUrl)),
      field(5, Buffer.from(nonce)),
      this.#controlPlane,
    ]);
  }

  /** A DeltaDiscoveryResponse: system_version_info, the resources (name, version, Any), type_url, removed_resources, nonce. */
  delta(typeUrl: string, systemVersion: string, resources: readonly XdsResource[], removed: readonly string[], previousNonce: string): EncodedResponse {
    return this.#message('d', typeUrl, systemVersion, resources, removed, previousNonce, (nonce) => [
      field(1, Buffer.from(systemVersion)),
      ...resources.map((resource) => this.#deltaEntry(resource)),
      field(4, Buffer.from(typeUrl)),
      field(5, Buffer.from(nonce)),
      ...removed.map((name) => field(6, Buffer.from(name))),
      this.#controlPlane,
    ]);
  }

  #message(kind: string, typeUrl: string, version: string, resources: readonly XdsResource[], removed: readonly string[], previousNonce: string, build: (nonce: string) => Buffer[]): EncodedResponse {
    let key = `${kind}\n${typeUrl}\n${version}`;
    for (const resource of resources) key += `\n${resource.name}\0${resource.version}`;
    for (const name of removed) key += `\n-${name}`;
    let message = this.#messages.get(key);
    if (message?.nonce === previousNonce) {
      // The same message again on one stream: a copy of its own, not cached.
      const nonce = this.#nextNonce();
      this.stats.bodyEncodings++;
      return frame(build(nonce), nonce);
    }
    if (message) {
      // Most recently used last: the oldest goes first when the cache is full.
      this.#messages.delete(key);
    } else {
      const nonce = this.#nextNonce();
      message = frame(build(nonce), nonce);
      this.stats.bodyEncodings++;
      if (this.#messages.size >= MAX_CACHED_BODIES) this.#messages.delete(this.#messages.keys().next().value!);
    }
    this.#messages.set(key, message);
    return message;
  }

  #nextNonce(): string {
    return (++this.#nonces).toString(36);
  }

  #sotwEntry(resource: XdsResource): Buffer {
    let entry = this.#sotwEntries.get(resource);
    if (!entry) {
      entry = field(2, any(resource.resource));
      this.#sotwEntries.set(resource, entry);
      this.stats.resourceEncodings++;
    }
    return entry;
  }

  #deltaEntry(resource: XdsResource): Buffer {
    let entry = this.#deltaEntries.get(resource);
    if (!entry) {
      // envoy.service.discovery.v3.Resource: version = 1, resource = 2, name = 3.
      entry = field(2, Buffer.concat([field(1, Buffer.from(resource.version)), field(2, any(resource.resource)), field(3, Buffer.from(resource.name))]));
      this.#deltaEntries.set(resource, entry);
      this.stats.resourceEncodings++;
    }
    return entry;
  }
}

/** The message of `parts`, framed for gRPC (no compression flag, then the length). */
function frame(parts: Buffer[], nonce: string): EncodedResponse {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(length, 1);
  const framed = Buffer.concat([prefix, ...parts], length + 5);
  return { framed, bytes: framed.subarray(5), nonce };
}

/** google.protobuf.Any: type_url = 1, value = 2. */
function any(message: AnyMessage): Buffer {
  return Buffer.concat([field(1, Buffer.from(message.type_url)), field(2, message.value)]);
}

/** A length-delimited field: its tag, the payload's length (varints) and the payload. */
function field(number: number, payload: Buffer): Buffer {
  const head: number[] = [];
  for (let value of [number * 8 + LENGTH_DELIMITED, payload.length]) {
    while (value >= 0x80) {
      head.push((value % 0x80) | 0x80);
      value = Math.floor(value / 0x80);
    }
    head.push(value);
  }
  return Buffer.concat([Buffer.from(head), payload]);
}
