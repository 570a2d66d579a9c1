/**
 * What the parsed descriptor sets offer the rest of the proxy (src/config/descriptor-sets.ts makes
 * them). Kept apart so that using them does not load @bufbuild/protobuf: only a config that names
 * descriptor sets does.
 */

/** A message body could not be translated; the message says why (for the client and the access log). */
export class TranscodeError extends Error {
  override readonly name = 'TranscodeError';
}

/** One method's messages, translated between the JSON and binary protobuf forms. */
export interface MethodCodec {
  /** `/package.Service/Method`. */
  readonly path: string;
  /** The method's idempotency_level says it has no side effects (Connect's GET is for those). */
  readonly noSideEffects: boolean;
  /** A request in canonical JSON → binary; throws TranscodeError. */
  requestToBinary(json: Uint8Array): Uint8Array;
  /** A response in binary → canonical JSON; throws TranscodeError. */
  responseToJson(binary: Uint8Array): Uint8Array;
}

export interface DescriptorSets {
  /** The codec of a method path, or undefined when no set describes it. */
  method(path: string): MethodCodec | undefined;
  /** How many services the sets describe. */
  readonly serviceCount: number;
}
