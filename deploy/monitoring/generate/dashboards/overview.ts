/** "Switchyard / Overview": what clients get from the proxies, per route and method. */
import { dashboard, datasourceVariable, finish, labelVariable, row, statPanel, timeSeries } from '../panels.ts';
import { BACKEND_FAILURE, FAILED_REASON, SERVER_ERROR_CODES, rate, selector } from '../promql.ts';

const ALL = ['job=~"$job"', 'route=~"$route"'];
const handled = (extra = '') => rate('grpc_server_handled_total', selector(ALL, extra));
const buckets = rate('grpc_server_handling_seconds_bucket', selector(ALL));
const errorRatio = (by: string) =>
  `sum by (${by}) (${handled(`grpc_code=~"${SERVER_ERROR_CODES}"`)}) / sum by (${by}) (${handled()})`;
const quantile = (q: number, by: string) => `histogram_quantile(${q}, sum by (${[...by.split(', ').filter(Boolean), 'le'].join(', ')}) (${buckets}))`;

export function overviewDashboard() {
  return finish(dashboard('switchyard-overview', 'Switchyard / Overview',
    'RPCs the Switchyard proxies serve: rate, server-side error ratio and latency per route and method, failures by catalogue reason. Counted by the gRPC status the client received (trailers included).')
    .withVariable(datasourceVariable())
    .withVariable(labelVariable('job', 'Job', 'switchyard_info'))
    .withVariable(labelVariable('route', 'Route', 'grpc_server_handled_total{job=~"$job"}'))

    .withRow(row('Now'))
    .withPanel(statPanel('RPC/s', { expr: `sum(${handled()})` }, { unit: 'reqps', description: 'RPCs finished per second, every status.' }))
    .withPanel(statPanel('Server error ratio', { expr: `sum(${handled(`grpc_code=~"${SERVER_ERROR_CODES}"`)}) / sum(${handled()})` }, {
      unit: 'percentunit', min: 0, thresholds: [[0.01, 'orange'], [0.05, 'red']],
      description: `Share of RPCs that ended ${SERVER_ERROR_CODES.split('|').join(', ')}: the serving side failed, not the request.`,
    }))
    .withPanel(statPanel('p99 latency', { expr: quantile(0.99, '') }, { unit: 's', description: 'As the client saw it through the proxy, retries included (grpc_server_handling_seconds).' }))
    .withPanel(statPanel('RPCs in flight', { expr: 'sum(switchyard_cluster_active_rpcs{job=~"$job"})' }, { description: 'RPCs on their way to or from a backend now, over every cluster.' }))
    .withPanel(statPanel('Client connections', { expr: 'sum(switchyard_listener_connections{job=~"$job"})' }, { description: 'Open HTTP/2 connections from clients, over every listener.' }))
    .withPanel(statPanel('Ready proxies', { expr: 'sum(switchyard_ready{job=~"$job"})' }, {
      description: 'Proxies whose /ready answers 200 (a draining proxy counts 0). With --workers, each worker counts.',
    }))

    .withRow(row('Per route'))
    .withPanel(timeSeries('RPC/s per route', [{ expr: `sum by (route) (${handled()})`, legend: '{{route}}' }], {
      unit: 'reqps', min: 0, legendCalcs: ['mean', 'max'], description: 'RPCs finished per second, by the route that matched (`none` when no route matched).',
    }))
    .withPanel(timeSeries('Server error ratio per route', [{ expr: errorRatio('route'), legend: '{{route}}' }], {
      unit: 'percentunit', min: 0, legendCalcs: ['mean', 'max'], thresholds: [[0.05, 'red']],
      description: 'The alert SwitchyardHighErrorRatio fires above 5% for 10 minutes.',
    }))
    .withPanel(timeSeries('Latency per route: p50 and p99', [
      { expr: quantile(0.5, 'route'), legend: 'p50 {{route}}' },
      { expr: quantile(0.99, 'route'), legend: 'p99 {{route}}' },
    ], { unit: 's', min: 0, legendCalcs: ['mean', 'max'], description: 'From request headers to the end of the downstream stream. Long streams stretch these: read them per method.' }))
    .withPanel(timeSeries('RPC/s by status', [{ expr: `sum by (grpc_code) (${handled()})`, legend: '{{grpc_code}}' }], {
      unit: 'reqps', min: 0, stacked: true, legendCalcs: ['mean', 'max'], description: 'The gRPC status the client received, from headers (trailers-only) or trailers.',
    }))

    .withRow(row('Per method'))
    .withPanel(timeSeries('RPC/s per method', [{ expr: `sum by (grpc_service, grpc_method) (${handled()})`, legend: '{{grpc_service}}/{{grpc_method}}' }], {
      unit: 'reqps', min: 0, legendCalcs: ['mean', 'max'],
      description: 'Methods the config names or the backends proved to exist; every other path counts as unknown/unknown (bounded labels).',
    }))
    .withPanel(timeSeries('Server error ratio per method', [{ expr: errorRatio('grpc_service, grpc_method'), legend: '{{grpc_service}}/{{grpc_method}}' }], {
      unit: 'percentunit', min: 0, legendCalcs: ['mean', 'max'], description: 'As per route, split by method.',
    }))
    .withPanel(timeSeries('Latency per method: p50 and p99', [
      { expr: quantile(0.5, 'grpc_service, grpc_method'), legend: 'p50 {{grpc_service}}/{{grpc_method}}' },
      { expr: quantile(0.99, 'grpc_service, grpc_method'), legend: 'p99 {{grpc_service}}/{{grpc_method}}' },
    ], { unit: 's', min: 0, legendCalcs: ['mean', 'max'], description: 'grpc_server_handling_seconds per method.' }))
    .withPanel(timeSeries('Messages per second', [
      { expr: `sum by (route) (${rate('grpc_server_msg_received_total', selector(ALL))})`, legend: 'received {{route}}' },
      { expr: `sum by (route) (${rate('grpc_server_msg_sent_total', selector(ALL))})`, legend: 'sent {{route}}' },
    ], { unit: 'short', min: 0, description: 'gRPC messages from and to clients, counted from the length prefixes.' }))

    .withRow(row('Failures by catalogue reason'))
    .withPanel(timeSeries('Failed RPCs by catalogue reason', [
      { expr: `sum by (reason) (${handled(FAILED_REASON)})`, legend: '{{reason}}' },
      { expr: `sum(${handled(BACKEND_FAILURE)})`, legend: 'answered by a backend' },
    ], {
      unit: 'reqps', min: 0, stacked: true, legendCalcs: ['mean', 'max'],
      description: 'Why RPCs failed: the failure catalogue\'s stable code when the proxy ended the RPC (no_route, no_healthy_endpoint, overflow_requests, upstream_reset, ...; the access log carries the same), or a status a backend answered with.',
    }))
    .withPanel(timeSeries('Failed RPCs by route and reason', [{ expr: `sum by (route, reason) (${handled(FAILED_REASON)})`, legend: '{{route}}: {{reason}}' }], {
      unit: 'reqps', min: 0, legendCalcs: ['mean', 'max'], description: 'The same, split by route: which route suffers from which failure.',
    }))

    .withRow(row('Bytes and connections'))
    .withPanel(timeSeries('Bytes per second', [
      { expr: `sum by (route) (${rate('switchyard_rpc_received_bytes_total', selector(ALL))})`, legend: 'received {{route}}' },
      { expr: `sum by (route) (${rate('switchyard_rpc_sent_bytes_total', selector(ALL))})`, legend: 'sent {{route}}' },
    ], { unit: 'Bps', min: 0, description: 'Request and response bodies, gRPC framing included.' }))
    .withPanel(timeSeries('Client connections per listener', [{ expr: 'sum by (listener) (switchyard_listener_connections{job=~"$job"})', legend: '{{listener}}' }], {
      unit: 'short', min: 0, description: 'Open client connections. A proxy that balances per RPC serves any number of RPCs over few connections.',
    })));
}
