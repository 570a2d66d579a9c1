/**
 * A route's edits to request or response headers (Gateway API's
 * RequestHeaderModifier and ResponseHeaderModifier, Envoy's
 * request_headers_to_add/remove): pure functions over a Node header object.
 * The schema has already lower-cased the names and refused pseudo-headers and
 * connection-specific ones.
 */
import type { HeaderMap } from '../grpc/streams.ts';
import type { HeaderEditConfig } from '../config/schema.ts';

export interface HeaderEdit {
  readonly remove: readonly string[];
  readonly set: readonly (readonly [name: string, value: string])[];
  readonly add: readonly (readonly [name: string, value: string])[];
}

/** Undefined when the config edits nothing, so the RPC path skips the call. */
export function compileHeaderEdit(config: HeaderEditConfig | undefined): HeaderEdit | undefined {
  if (!config || (config.remove.length === 0 && config.set.length === 0 && config.add.length === 0)) return undefined;
  return {
    remove: config.remove,
    set: config.set.map((pair) => [pair.name, pair.value] as const),
    add: config.add.map((pair) => [pair.name, pair.value] as const),
  };
}

/**
 * Applies `edit` to `headers` in place and returns them: removes first, then
 * sets (replacing every value), then adds (a further value: the header is
 * sent once per value, as gRPC metadata with several values is).
 */
export function applyHeaderEdit<T extends HeaderMap>(headers: T, edit: HeaderEdit): T {
  const target = headers as HeaderMap;
  for (const name of edit.remove) delete target[name];
  for (const [name, value] of edit.set) target[name] = value;
  for (const [name, value] of edit.add) {
    const existing = target[name];
    target[name] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [String(existing), value];
  }
  return headers;
}
