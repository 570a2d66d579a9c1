/**
 * The Kubernetes API's vocabulary as the fake API server (fake-kube-api.ts)
 * speaks it: the resource types it knows, request paths, label selectors,
 * JSON merge patches and Status bodies.
 */

/** A Kubernetes object as JSON. */
export type KubeObject = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string; [key: string]: unknown }; [key: string]: unknown };

export interface ResourceInfo {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

const GATEWAY = 'gateway.networking.k8s.io';
/** The kinds the fake knows, by kind. */
export const KINDS: Readonly<Record<string, ResourceInfo>> = Object.fromEntries(([
  ['discovery.k8s.io', 'v1', 'endpointslices', 'EndpointSlice', true],
  ['', 'v1', 'services', 'Service', true],
  ['', 'v1', 'namespaces', 'Namespace', false],
  ['coordination.k8s.io', 'v1', 'leases', 'Lease', true],
  [GATEWAY, 'v1', 'gatewayclasses', 'GatewayClass', false],
  [GATEWAY, 'v1', 'gateways', 'Gateway', true],
  [GATEWAY, 'v1', 'grpcroutes', 'GRPCRoute', true],
  [GATEWAY, 'v1', 'httproutes', 'HTTPRoute', true],
  [GATEWAY, 'v1beta1', 'referencegrants', 'ReferenceGrant', true],
] as const).map(([group, version, plural, kind, namespaced]) => [kind, { group, version, plural, kind, namespaced }]));
const BY_PLURAL = new Map(Object.values(KINDS).map((info) => [`${info.group}/${info.plural}`, info]));

export function apiVersionOf(info: ResourceInfo): string {
  return info.group === '' ? info.version : `${info.group}/${info.version}`;
}

export interface ParsedPath {
  readonly info: ResourceInfo;
  /** Undefined: every namespace (or a cluster-scoped kind). */
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly subresource: string | undefined;
}

export function parsePath(pathname: string): ParsedPath | undefined {
  const match = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/(.*)$/.exec(pathname);
  if (!match) return undefined;
  const group = match[2] ?? '';
  const segments = match[4]!.split('/').filter(Boolean).map(decodeURIComponent);
  let namespace: string | undefined;
  if (segments[0] === 'namespaces' && segments.length >= 3) {
    namespace = segments[1];
    segments.splice(0, 2);
  }
  const info = BY_PLURAL.get(`${group}/${segments[0]}`);
  if (!info) return undefined;
  return { info, namespace, name: segments[1], subresource: segments[2] };
}

export type Selector = (labels: Readonly<Record<string, string>> | undefined) => boolean;

/** Parses the equality-based selector forms; set-based (`in`, `notin`) are not needed here. */
export function parseSelector(text: string | null): Selector {
  if (!text) return () => true;
  const terms = text.split(',').map((term) => term.trim()).filter(Boolean).map((term): Selector => {
    let match = /^([^!=]+)(==|=|!=)(.*)$/.exec(term);
    if (match) {
      const [, key, op, value] = match as unknown as [string, string, string, string];
      return op === '!=' ? (labels) => labels?.[key.trim()] !== value.trim() : (labels) => labels?.[key.trim()] === value.trim();
    }
    match = /^!(.+)$/.exec(term);
    if (match) return (labels) => labels?.[match![1]!] === undefined;
    return (labels) => labels?.[term] !== undefined;
  });
  return (labels) => terms.every((term) => term(labels));
}

export function statusObject(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

export function labelsOf(object: KubeObject): Record<string, string> | undefined {
  return object.metadata?.labels as Record<string, string> | undefined;
}

