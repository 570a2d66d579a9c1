/**
 * The `gateway` check: reads a Gateway and the GRPCRoutes and HTTPRoutes that
 * name it from the Kubernetes API and reports what their status says. It
 * passes when the Gateway is Accepted and Programmed, every listener is
 * Programmed, and every route attached to it is Accepted with its references
 * resolved, all at the objects' current generation (a status older than the
 * spec means the controller has not caught up, or is not running).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Progress } from './progress.ts';
import type { CheckResult } from './report.ts';

// What this check reads of the Gateway API objects, as the API server returns them (verify imports
// no other folder: these are its own, smallest views).
interface Condition { readonly type: string; readonly status: string; readonly reason: string; readonly message?: string; readonly observedGeneration?: number }
interface ParentReference { readonly group?: string; readonly kind?: string; readonly namespace?: string; readonly name: string; readonly sectionName?: string; readonly port?: number }
interface Meta { readonly name: string; readonly namespace?: string; readonly generation?: number }
export interface Gateway {
  readonly metadata: Meta;
  readonly spec: { readonly listeners?: readonly { readonly name: string; readonly port: number; readonly protocol: string; readonly hostname?: string }[] };
  readonly status?: {
    readonly conditions?: readonly Condition[];
    readonly addresses?: readonly { readonly value: string }[];
    readonly listeners?: readonly { readonly name: string; readonly attachedRoutes?: number; readonly conditions?: readonly Condition[] }[];
  };
}
export interface Route {
  readonly metadata: Meta;
  readonly spec?: { readonly parentRefs?: readonly ParentReference[] };
  readonly status?: { readonly parents?: readonly { readonly parentRef: ParentReference; readonly conditions: readonly Condition[] }[] };
}

export interface GatewayCheckOptions {
  readonly namespace: string;
  readonly name: string;
  /** A kubeconfig file; default: KUBECONFIG, ~/.kube/config, then in-cluster. */
  readonly kubeconfig?: string | undefined;
  /** Built in code (tests); wins over kubeconfig. */
  readonly kubeConfig?: KubeConfig;
}

interface Finding {
  readonly ok: boolean;
  readonly line: string;
}

/** What the Gateway's and its routes' status say, as findings; pure. */
export function gatewayFindings(gateway: Gateway, routes: readonly { kind: string; route: Route }[]): Finding[] {
  const findings: Finding[] = [];
  const generation = gateway.metadata.generation;
  const describe = (conditions: readonly Condition[] | undefined, type: string, at: number | undefined): Finding & { status: string } => {
    const found = conditions?.find((c) => c.type === type);
    if (!found) return { ok: false, status: 'missing', line: `${type}: no condition (is the controller running?)` };
    const stale = at !== undefined && found.observedGeneration !== undefined && found.observedGeneration < at;
    const ok = found.status === 'True' && !stale;
    return { ok, status: found.status, line: `${type}=${found.status} (${found.reason})${stale ? `, observedGeneration ${found.observedGeneration} < generation ${at}: not caught up` : ''}${found.status === 'True' || !found.message ? '' : `: ${found.message}`}` };
  };
  const key = `${gateway.metadata.namespace}/${gateway.metadata.name}`;
  for (const type of ['Accepted', 'Programmed']) {
    const result = describe(gateway.status?.conditions, type, generation);
    findings.push({ ok: result.ok, line: `Gateway ${key}: ${result.line}` });
  }
  const addresses = (gateway.status?.addresses ?? []).map((address) => address.value);
  findings.push({ ok: addresses.length > 0, line: `Gateway ${key}: addresses ${addresses.length > 0 ? addresses.join(', ') : 'none'}` });
  for (const listener of gateway.spec.listeners ?? []) {
    const status = gateway.status?.listeners?.find((entry) => entry.name === listener.name);
    const programmed = describe(status?.conditions, 'Programmed', generation);
    findings.push({ ok: programmed.ok, line: `listener ${listener.name} (${listener.protocol} ${listener.port}${listener.hostname ? ` ${listener.hostname}` : ''}): ${programmed.line}, ${status?.attachedRoutes ?? 0} route(s) attached` });
  }
  for (const { kind, route } of routes) {
    const routeKey = `${kind} ${route.metadata.namespace}/${route.metadata.name}`;
    const refs = (route.spec?.parentRefs ?? []).filter((ref) => namesGateway(ref, route.metadata.namespace ?? 'default', gateway));
    for (const ref of refs) {
      const parent = (route.status?.parents ?? []).find((entry) => sameRef(entry.parentRef, ref, route.metadata.namespace ?? 'default'));
      const section = ref.sectionName ? ` (listener ${ref.sectionName})` : '';
      if (!parent) {
        findings.push({ ok: false, line: `${routeKey}${section}: no status for this Gateway (is the controller running, and is the route's namespace allowed?)` });
        continue;
      }
      for (const type of ['Accepted', 'ResolvedRefs']) {
        const result = describe(parent.conditions, type, route.metadata.generation);
        findings.push({ ok: result.ok, line: `${routeKey}${section}: ${result.line}` });
      }
      const partly = parent.conditions.find((c) => c.type === 'PartiallyInvalid' && c.status === 'True');
      if (partly) findings.push({ ok: false, line: `${routeKey}${section}: PartiallyInvalid (${partly.reason}): ${partly.message}` });
    }
  }
  return findings;
}

export async function runGatewayCheck(options: GatewayCheckOptions, progress: Progress): Promise<CheckResult> {
  const started = performance.now();
  const k8s = await import('@kubernetes/client-node');
  let kc = options.kubeConfig;
  if (!kc) {
    kc = new k8s.KubeConfig();
    if (options.kubeconfig !== undefined) kc.loadFromFile(options.kubeconfig);
    else kc.loadFromDefault();
  }
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  const group = 'gateway.networking.k8s.io';
  progress.update(`reading Gateway ${options.namespace}/${options.name}`);
  let gateway: Gateway;
  try {
    gateway = await api.getNamespacedCustomObject({ group, version: 'v1', namespace: options.namespace, plural: 'gateways', name: options.name }) as Gateway;
  } catch (error) {
    progress.end();
    const code = (error as { code?: number }).code;
    const reason = code === 404 ? `Gateway ${options.namespace}/${options.name} not found` : `cannot read Gateway ${options.namespace}/${options.name}: ${(error as Error).message}`;
    return { check: 'gateway', passed: false, reason, details: [], data: {}, durationMs: performance.now() - started };
  }
  const routes: { kind: string; route: Route }[] = [];
  for (const [kind, plural] of [['GRPCRoute', 'grpcroutes'], ['HTTPRoute', 'httproutes']] as const) {
    progress.update(`reading ${plural}`);
    const list = await api.listClusterCustomObject({ group, version: 'v1', plural }) as { items: (Route)[] };
    for (const route of list.items) {
      if ((route.spec?.parentRefs ?? []).some((ref) => namesGateway(ref, route.metadata.namespace ?? 'default', gateway))) routes.push({ kind, route });
    }
  }
  progress.end();
  const findings = gatewayFindings(gateway, routes);
  const failed = findings.filter((finding) => !finding.ok);
  const routeCount = routes.length;
  return {
    check: 'gateway',
    passed: failed.length === 0,
    reason: failed.length === 0
      ? `Gateway ${options.namespace}/${options.name} programmed; ${routeCount} route(s) accepted with their references resolved`
      : `${failed.length} problem(s): ${failed[0]!.line}${failed.length > 1 ? ' (and more below)' : ''}`,
    details: findings.map((finding) => `${finding.ok ? 'ok  ' : 'FAIL'} ${finding.line}`),
    data: { gateway: `${options.namespace}/${options.name}`, routes: routeCount, problems: failed.map((finding) => finding.line) },
    durationMs: performance.now() - started,
  };
}

function namesGateway(ref: ParentReference, routeNamespace: string, gateway: Gateway): boolean {
  return (ref.group ?? group()) === group() && (ref.kind ?? 'Gateway') === 'Gateway' && ref.name === gateway.metadata.name && (ref.namespace ?? routeNamespace) === gateway.metadata.namespace;
}

function sameRef(a: ParentReference, b: ParentReference, routeNamespace: string): boolean {
  return a.name === b.name && (a.namespace ?? routeNamespace) === (b.namespace ?? routeNamespace) && (a.sectionName ?? '') === (b.sectionName ?? '') && (a.port ?? 0) === (b.port ?? 0);
}

function group(): string {
  return 'gateway.networking.k8s.io';
}
