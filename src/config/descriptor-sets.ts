/**
 * The protobuf descriptor sets a config names (`web.descriptor_sets`), parsed:
 * for each gRPC method its request and response messages, and their canonical
 * JSON mapping (what Connect's `application/json` bodies are). Loaded by
 * loadConfig only when the config names a set, since @bufbuild/protobuf costs
 * memory a proxy without them does not need.
 */
import { createFileRegistry, fromBinary, fromJsonString, toBinary, toJsonString, type DescMessage, type DescMethod, type FileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema, type DescriptorProto, type FileDescriptorSet } from '@bufbuild/protobuf/wkt';
import { TranscodeError, type DescriptorSets, type MethodCodec } from './descriptor-types.ts';

export type { DescriptorSets, MethodCodec } from './descriptor-types.ts';

/** Thrown for a set that does not parse, or whose imports are missing; the message says which. */
export class DescriptorSetError extends Error {
  override readonly name = 'DescriptorSetError';
}

/** Parses each file's bytes; `names[i]` labels `sets[i]` in errors. */
export function parseDescriptorSets(sets: readonly Uint8Array[], names: readonly string[]): DescriptorSets {
  const registries = sets.map((bytes, i) => {
    let set: FileDescriptorSet;
    try {
      set = fromBinary(FileDescriptorSetSchema, bytes);
    } catch (error) {
      throw new DescriptorSetError(`"${names[i]}" is not a FileDescriptorSet (${(error as Error).message}); write one with "buf build -o FILE" or "protoc --include_imports --descriptor_set_out=FILE"`);
    }
    for (const file of set.file) for (const message of file.messageType) fillJsonNames(message);
    try {
      return createFileRegistry(set);
    } catch (error) {
      throw new DescriptorSetError(`"${names[i]}": ${(error as Error).message} (with protoc, pass --include_imports)`);
    }
  });
  return new Index(registries.length === 1 ? registries[0]! : createFileRegistry(...registries));
}

class Index implements DescriptorSets {
  readonly #methods = new Map<string, MethodCodec>();
  readonly serviceCount: number;

  constructor(registry: FileRegistry) {
    let services = 0;
    for (const file of registry.files) {
      for (const service of file.services) {
        services++;
        for (const method of service.methods) {
          const path = `/${service.typeName}/${method.name}`;
          this.#methods.set(path, codecOf(path, method, registry));
        }
      }
    }
    this.serviceCount = services;
  }

  method(path: string): MethodCodec | undefined {
    return this.#methods.get(path);
  }
}

function codecOf(path: string, method: DescMethod, registry: FileRegistry): MethodCodec {
  const input: DescMessage = method.input;
  const output: DescMessage = method.output;
  // The registry lets google.protobuf.Any fields name any message the sets hold.
  const readOptions = { registry, ignoreUnknownFields: false };
  const writeOptions = { registry };
  return {
    path,
    noSideEffects: method.idempotency === 1,
    requestToBinary(json) {
      try {
        return toBinary(input, fromJsonString(input, DECODER.decode(json), readOptions));
      } catch (error) {
        throw new TranscodeError(`request is not a valid ${input.typeName} in JSON: ${(error as Error).message}`);
      }
    },
    responseToJson(binary) {
      try {
        return ENCODER.encode(toJsonString(output, fromBinary(output, binary), writeOptions));
      } catch (error) {
        throw new TranscodeError(`response is not a valid ${output.typeName}: ${(error as Error).message}`);
      }
    },
  };
}

const DECODER = new TextDecoder('utf-8', { fatal: true });
const ENCODER = new TextEncoder();

/**
 * protoc and buf always set json_name; sets written by other tools may not, and an empty one would
 * make every field's JSON name "". Filled here as protoc does: lowerCamelCase of the field name.
 */
function fillJsonNames(message: DescriptorProto): void {
  for (const field of message.field) {
    if (!field.jsonName) field.jsonName = field.name.replace(/_+([a-z0-9])/g, (_match, next: string) => next.toUpperCase());
  }
  for (const nested of message.nestedType) fillJsonNames(nested);
}
