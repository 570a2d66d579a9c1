/**
 * The RouteConfiguration names a Listener fetches by RDS: from its
 * api_listener (proxyless gRPC) and from the HttpConnectionManager of each
 * filter chain (Envoy-style). Decoded once per resource object.
 */
import { HTTP_CONNECTION_MANAGER_TYPE_URL, unpackAny, type AnyMessage } from '../protos.ts';
import type { XdsResource } from '../snapshot.ts';

const cache = new WeakMap<XdsResource, readonly string[]>();

export function routeNamesOf(listener: XdsResource): readonly string[] {
  let names = cache.get(listener);
  if (!names) {
    names = decode(listener.resource);
    cache.set(listener, names);
  }
  return names;
}

interface PackedAny {
  readonly type_url?: string;
  readonly value?: Uint8Array;
}

function decode(resource: AnyMessage): readonly string[] {
  let listener: Record<string, unknown>;
  try {
    listener = unpackAny(resource);
  } catch {
    return [];
  }
  const managers: PackedAny[] = [];
  const api = (listener.api_listener as { api_listener?: PackedAny } | undefined)?.api_listener;
  if (api) managers.push(api);
  for (const chain of (listener.filter_chains as { filters?: { typed_config?: PackedAny }[] }[] | undefined) ?? []) {
    for (const filter of chain.filters ?? []) if (filter.typed_config) managers.push(filter.typed_config);
  }
  const names: string[] = [];
  for (const manager of managers) {
    if (manager.type_url !== HTTP_CONNECTION_MANAGER_TYPE_URL || !manager.value) continue;
    try {
      const decoded = unpackAny({ type_url: manager.type_url, value: Buffer.from(manager.value) });
      const name = (decoded.rds as { route_config_name?: string } | undefined)?.route_config_name;
      if (name) names.push(name);
    } catch {
      // A manager that does not decode names no route: nothing more is allowed because of it.
    }
  }
  return names;
}
