/**
 * The four ADS messages as @grpc/grpc-js (through proto-loader) carries
 * them, and a response of either protocol in the one shape the client
 * handles.
 */
import type { AnyMessage } from '../protos.ts';

export interface DiscoveryRequest {
  version_info: string;
  node?: Record<string, unknown>;
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail?: { code: number; message: string };
}

export interface DiscoveryResponse {
  version_info?: string;
  resources?: AnyMessage[];
  type_url?: string;
  nonce?: string;
}

export interface DeltaDiscoveryRequest {
  node?: Record<string, unknown>;
  type_url: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce: string;
  error_detail?: { code: number; message: string };
}

export interface DeltaDiscoveryResponse {
  system_version_info?: string;
  resources?: { name?: string; version?: string; resource?: AnyMessage | null }[];
  type_url?: string;
  removed_resources?: string[];
  nonce?: string;
}

/** A response of either protocol, as the handling needs it. */
export interface Received {
  readonly typeUrl: string;
  readonly version: string;
  readonly nonce: string;
  /** The resources carried, with their names and versions in delta. */
  readonly resources: readonly { readonly any: AnyMessage; readonly name?: string | undefined; readonly version?: string | undefined }[];
  /** Delta removed_resources. */
  readonly removed: readonly string[];
}

/** A response of either protocol in the shape #handle takes. */
export function received(protocol: 'sotw' | 'delta', response: DiscoveryResponse | DeltaDiscoveryResponse): Received {
  if (protocol === 'sotw') {
    const sotw = response as DiscoveryResponse;
    return { typeUrl: sotw.type_url ?? '', version: sotw.version_info ?? '', nonce: sotw.nonce ?? '', resources: (sotw.resources ?? []).map((any) => ({ any })), removed: [] };
  }
  const delta = response as DeltaDiscoveryResponse;
  const typeUrl = delta.type_url ?? '';
  return {
    typeUrl,
    version: delta.system_version_info ?? '',
    nonce: delta.nonce ?? '',
    // A resource without a body names one that is gone (as removed_resources does).
    resources: (delta.resources ?? []).filter((r) => r.resource).map((r) => ({ any: r.resource!, name: r.name, version: r.version })),
    removed: [...(delta.removed_resources ?? []), ...(delta.resources ?? []).filter((r) => !r.resource && r.name).map((r) => r.name!)],
  };
}
