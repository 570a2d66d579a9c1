/**
 * The translation's output as Envoy v3 resources: a RouteConfiguration per
 * Gateway (a virtual host per hostname), EDS clusters for the backends, and
 * an api_listener per hostname for proxyless gRPC clients. Switchyard proxies
 * take every field used here (src/xds/client/translate.ts); gRPC's xDS
 * clients take the matches, weighted clusters, timeouts and retries, and
 * ignore the header edits.
 */
import { packAny, TYPE_URL, type AnyMessage } from '../protos.ts';
import { SWITCHYARD_METADATA } from '../resources.ts';
import type { GatewayRouteConfig, GatewayXdsRoute } from './translate.ts';
import type { HeaderModifier } from './model.ts';

export function gatewayRouteConfigurationResource(config: GatewayRouteConfig): AnyMessage {
  return packAny(TYPE_URL.route, {
    name: config.name,
    virtual_hosts: config.virtualHosts.map((host) => ({ name: host.name, domains: host.domains, routes: host.routes.map(routeMessage) })),
  });
}

function routeMessage(route: GatewayXdsRoute): Record<string, unknown> {
  const { match, action } = route;
  const backends = action.backends;
  return {
    name: route.name,
    match: {
      ...(match.path !== undefined ? { path: match.path } : match.regex !== undefined ? { safe_regex: { regex: match.regex } } : { prefix: match.prefix ?? '/' }),
      headers: match.headers.map((header) => ({
        name: header.name,
        // Anchored: the Gateway API matches a header's whole value, as Envoy's RE2 full match does.
        string_match: header.regex !== undefined ? { safe_regex: { regex: `^(?:${header.regex})$` } } : { exact: header.exact ?? '' },
      })),
    },
    route: {
      ...(backends.length === 1 ? { cluster: backends[0]!.cluster } : { weighted_clusters: { clusters: backends.map((backend) => ({ name: backend.cluster, weight: { value: backend.weight } })) } }),
      ...(action.timeoutMs !== undefined && { max_stream_duration: { grpc_timeout_header_max: duration(action.timeoutMs) } }),
      ...(action.retry && {
        retry_policy: {
          retry_on: action.retry.retryOn.map((condition) => condition.replace(/_/g, '-')).join(','),
          num_retries: { value: action.retry.numRetries },
          ...(action.retry.perTryTimeoutMs !== undefined && { per_try_timeout: duration(action.retry.perTryTimeoutMs) }),
        },
      }),
    },
    ...headerEdits('request', action.requestHeaders),
    ...headerEdits('response', action.responseHeaders),
    // Switchyard proxies read it (gRPC-Web and Connect for the route); other xDS clients ignore route metadata.
    ...(action.webProtocols && { metadata: { filter_metadata: { [SWITCHYARD_METADATA]: { fields: { web_protocols: { stringValue: action.webProtocols.join(',') } } } } } }),
  };
}

function headerEdits(direction: 'request' | 'response', modifier: HeaderModifier | undefined): Record<string, unknown> {
  if (!modifier) return {};
  const add = [
    ...(modifier.set ?? []).map((header) => ({ header: { key: header.name.toLowerCase(), value: header.value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' })),
    ...(modifier.add ?? []).map((header) => ({ header: { key: header.name.toLowerCase(), value: header.value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' })),
  ];
  const remove = (modifier.remove ?? []).map((name) => name.toLowerCase());
  return {
    ...(add.length > 0 && { [`${direction}_headers_to_add`]: add }),
    ...(remove.length > 0 && { [`${direction}_headers_to_remove`]: remove }),
  };
}

function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}
