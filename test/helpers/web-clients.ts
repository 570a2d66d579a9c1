/**
 * Browser-protocol clients of the Echo service for the web tests: the
 * service's descriptor set (made from echo.proto with protobufjs, without
 * json_name, as a set from a tool other than protoc may come), the Echo
 * service for @connectrpc clients, and gRPC-Web framing for tests that speak
 * the protocol with plain fetch.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { createFileRegistry, fromBinary, toBinary, create, type DescMessage, type DescService } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema, MethodOptions_IdempotencyLevel, MethodOptionsSchema } from '@bufbuild/protobuf/wkt';
import { ECHO_PROTO } from '../../src/demo/echo-service.ts';

let cachedSet: Uint8Array | undefined;

/**
 * echo.proto as a serialized google.protobuf.FileDescriptorSet, with Unary marked
 * `idempotency_level = NO_SIDE_EFFECTS` (it echoes, and changes nothing), as a service that offers
 * Connect's GET would mark its methods.
 */
export function echoDescriptorSet(): Uint8Array {
  if (!cachedSet) {
    const root = new protobuf.Root().loadSync(ECHO_PROTO, { keepCase: true });
    const fromProtobufjs = (root as unknown as { toDescriptor(syntax: string): unknown }).toDescriptor('proto3');
    const set = fromBinary(FileDescriptorSetSchema, (descriptor as unknown as { FileDescriptorSet: { encode(message: unknown): { finish(): Uint8Array } } }).FileDescriptorSet.encode(fromProtobufjs).finish());
    const unary = set.file[0]!.service[0]!.method.find((method) => method.name === 'Unary')!;
    unary.options = create(MethodOptionsSchema, { idempotencyLevel: MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS });
    cachedSet = toBinary(FileDescriptorSetSchema, set);
  }
  return cachedSet;
}

/** Writes the descriptor set to `dir`/echo.binpb and returns its path. */
export async function writeEchoDescriptorSet(dir: string): Promise<string> {
  const file = path.join(dir, 'echo.binpb');
  await writeFile(file, echoDescriptorSet());
  return file;
}

export interface EchoSchema {
  readonly service: DescService;
  readonly request: DescMessage;
  readonly response: DescMessage;
}

let cachedSchema: EchoSchema | undefined;

/** The Echo service and its messages, for createClient() and create(). */
export function echoSchema(): EchoSchema {
  if (!cachedSchema) {
    const set = fromBinary(FileDescriptorSetSchema, echoDescriptorSet());
    // protoc would have set them; the clients need them for JSON.
    for (const file of set.file) {
      for (const message of file.messageType) {
        for (const field of message.field) field.jsonName = field.name.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
      }
    }
    const registry = createFileRegistry(set);
    cachedSchema = {
      service: registry.getService('switchyard.demo.v1.Echo')!,
      request: registry.getMessage('switchyard.demo.v1.EchoRequest')!,
      response: registry.getMessage('switchyard.demo.v1.EchoResponse')!,
    };
  }
  return cachedSchema;
}

/** An EchoRequest in binary protobuf. */
export function echoRequestBytes(fields: Record<string, unknown>): Uint8Array {
  const { request } = echoSchema();
  return toBinary(request, create(request, fields));
}

/** An EchoResponse's fields from binary protobuf. */
export function decodeEchoResponse(bytes: Uint8Array): { payload: Uint8Array; backend: string; sequence: number; metadata: string[] } {
  const { response } = echoSchema();
  return fromBinary(response, bytes) as unknown as { payload: Uint8Array; backend: string; sequence: number; metadata: string[] };
}

/** One length-prefixed message (gRPC, gRPC-Web and Connect framing). */
export function frameMessage(message: Uint8Array, flags = 0): Buffer<ArrayBuffer> {
  const out = Buffer.alloc(5 + message.length);
  out[0] = flags;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

export interface GrpcWebBody {
  readonly messages: Buffer[];
  /** The trailer frame's header block, parsed; undefined when the body has none (a trailers-only answer). */
  readonly trailers: Record<string, string> | undefined;
}

/** Splits a (binary) gRPC-Web response body into its messages and its trailer frame. */
export function parseGrpcWebBody(body: Buffer): GrpcWebBody {
  const messages: Buffer[] = [];
  let trailers: Record<string, string> | undefined;
  let offset = 0;
  while (offset + 5 <= body.length) {
    const flags = body[offset]!;
    const length = body.readUInt32BE(offset + 1);
    const payload = body.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
    if ((flags & 0x80) === 0) {
      messages.push(payload);
      continue;
    }
    trailers = {};
    for (const line of payload.toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) trailers[line.slice(0, colon)] = line.slice(colon + 1).trim();
    }
  }
  if (offset !== body.length) throw new Error(`the body has ${body.length - offset} bytes after its last whole frame`);
  return { messages, trailers };
}

/** Decodes a text-mode body: base64 quanta, padded at any quantum boundary. */
export function decodeTextBody(text: string): Buffer {
  const parts: Buffer[] = [];
  for (const piece of text.match(/[^=]*={0,2}/g) ?? []) if (piece) parts.push(Buffer.from(piece, 'base64'));
  return Buffer.concat(parts);
}
