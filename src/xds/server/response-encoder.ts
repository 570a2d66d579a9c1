/**
 * Encodes DiscoveryResponse and DeltaDiscoveryResponse messages from
 * resources that are serialised once and shared by every stream.
 *
 * A resource version is an immutable XdsResource object, so its wire form
 * (the repeated `resources` entry: tag, length, Any) is computed the first
 * time any stream sends it and kept beside the object (a WeakMap: it goes
 * when the provider drops the resource). A response body (version, entries,
 * type URL, control plane) is cached too, keyed by what it carries, so a push
 * of one change to 10,000 streams holding the same versions builds one body;
 * each stream adds only its nonce. Protobuf allows fields in any order, which
 * is what lets the nonce come last.
 *
 * Field numbers: envoy/service/discovery/v3/discovery.proto.
 */
import type { AnyMessage } from '../protos.ts';
import type { XdsResource } from '../snapshot.ts';

export interface EncoderStats {
  /** Resource entries serialised (each resource version once per protocol). */
  resourceEncodings: number;
  /** Response bodies built (the rest were shared). */
  bodyEncodings: number;
}

const LENGTH_DELIMITED = 2;
/** Bodies kept for sharing; each push needs a handful (one per distinct response), so this is generous. */
const MAX_CACHED_BODIES = 512;

export class ResponseEncoder {
  readonly stats: EncoderStats = { resourceEncodings: 0, bodyEncodings: 0 };
  readonly #sotwEntries = new WeakMap<XdsResource, Buffer>();
  readonly #deltaEntries = new WeakMap<XdsResource, Buffer>();
  readonly #bodies = new Map<string, Buffer>();
  readonly #controlPlane: Buffer;

  /** `controlPlaneId`: sent as control_plane.identifier in every response. */
  constructor(controlPlaneId: string | undefined) {
    this.#controlPlane = controlPlaneId === undefined ? Buffer.alloc(0) : field(6, field(1, Buffer.from(controlPlaneId)));
  }

  /** A DiscoveryResponse: version_info, the resources, type_url, nonce. */
  sotw(typeUrl: string, version: string, resources: readonly XdsResource[], nonce: string): Buffer {
    const body = this.#body('s', typeUrl, version, resources, [], () => [
      field(1, Buffer.from(version)),
      ...resources.map((resource) => this.#sotwEntry(resource)),
      field(4, Buffer.from(typeUrl)),
      this.#controlPlane,
    ]);
    return Buffer.concat([body, field(5, Buffer.from(nonce))]);
  }

  /** A DeltaDiscoveryResponse: system_version_info, the resources (name, version, Any), type_url, removed_resources, nonce. */
  delta(typeUrl: string, systemVersion: string, resources: readonly XdsResource[], removed: readonly string[], nonce: string): Buffer {
    const body = this.#body('d', typeUrl, systemVersion, resources, removed, () => [
      field(1, Buffer.from(systemVersion)),
      ...resources.map((resource) => this.#deltaEntry(resource)),
      field(4, Buffer.from(typeUrl)),
      ...removed.map((name) => field(6, Buffer.from(name))),
      this.#controlPlane,
    ]);
    return Buffer.concat([body, field(5, Buffer.from(nonce))]);
  }

  #body(kind: string, typeUrl: string, version: string, resources: readonly XdsResource[], removed: readonly string[], build: () => Buffer[]): Buffer {
    let key = `${kind}\n${typeUrl}\n${version}`;
    for (const resource of resources) key += `\n${resource.name}\0${resource.version}`;
    for (const name of removed) key += `\n-${name}`;
    let body = this.#bodies.get(key);
    if (body) {
      // Most recently used last: the oldest goes first when the cache is full.
      this.#bodies.delete(key);
    } else {
      body = Buffer.concat(build());
      this.stats.bodyEncodings++;
      if (this.#bodies.size >= MAX_CACHED_BODIES) this.#bodies.delete(this.#bodies.keys().next().value!);
    }
    this.#bodies.set(key, body);
    return body;
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
