/**
 * "Switchyard / Clusters": how each cluster's RPCs spread over its endpoints (the per-RPC balance an
 * L4 balancer cannot give, as a time series), endpoint health and ejections, and how close the
 * circuit breakers, the retry budget and the pools are to their limits.
 */
import { dashboard, datasourceVariable, finish, labelVariable, row, statPanel, timeSeries } from '../panels.ts';
import { rate, selector } from '../promql.ts';

const ALL = ['job=~"$job"', 'cluster=~"$cluster"'];
const attempts = (extra = '') => rate('switchyard_upstream_rpcs_total', selector(ALL, extra));
const gauge = (metric: string, extra = '') => `${metric}${selector(ALL, extra)}`;
/** A usage gauge over its configured limit, per proxy, the fullest proxy shown per cluster. */
const usage = (metric: string, limit: string) =>
  `max by (cluster) (${gauge(metric)} / ignoring (limit) ${gauge('switchyard_cluster_circuit_breaker_limit', `limit="${limit}"`)})`;

export function clustersDashboard() {
  return finish(dashboard('switchyard-clusters', 'Switchyard / Clusters',
    'Per cluster: each endpoint\'s share of the RPCs over time, health and outlier ejections, attempt latency, circuit breakers, retry budget and connection pools.')
    .withVariable(datasourceVariable())
    .withVariable(labelVariable('job', 'Job', 'switchyard_info'))
    .withVariable(labelVariable('cluster', 'Cluster', 'switchyard_cluster_active_rpcs{job=~"$job"}'))

    .withRow(row('Balance'))
    .withPanel(timeSeries('Share of RPCs per endpoint', [{
      expr: `sum by (cluster, endpoint) (${attempts()}) / on (cluster) group_left sum by (cluster) (${attempts()})`,
      legend: '{{cluster}} {{endpoint}}',
    }], {
      unit: 'percentunit', min: 0, max: 1, stacked: true, width: 24, height: 9, legendCalcs: ['mean', 'min', 'max'],
      description: 'Each endpoint\'s share of the attempts sent to its cluster (stacked, a cluster adds up to 100%). Behind an L4 balancer one pod holds a client\'s whole connection; here the bands stay even, an ejected endpoint\'s band thins to nothing and comes back. Retries count for the endpoint they went to.',
    }))
    .withPanel(timeSeries('Spread: busiest over least busy endpoint', [{
      expr: `max by (cluster) (sum by (cluster, endpoint) (${attempts()})) / min by (cluster) (sum by (cluster, endpoint) (${attempts()}))`,
      legend: '{{cluster}}',
    }], { unit: 'none', min: 1, description: '1 means perfectly even. Weights, slow start, ring_hash affinity and latency-aware policies move it on purpose; a pinned endpoint moves it a lot.' }))
    .withPanel(timeSeries('Attempts per endpoint by outcome', [{ expr: `sum by (endpoint, grpc_code, reason) (${attempts()})`, legend: '{{endpoint}} {{grpc_code}} {{reason}}' }], {
      unit: 'reqps', min: 0, legendCalcs: ['mean', 'max'],
      description: 'The status of each attempt and, when the proxy ended it, the failure catalogue\'s reason (upstream_connect_failure, upstream_reset, per_try_timeout, abandoned, ...).',
    }))

    .withRow(row('Health and ejections'))
    .withPanel(statPanel('Endpoints available', { expr: `sum(${gauge('switchyard_upstream_endpoint_available')})` }, {
      width: 6, description: 'Endpoints taking new RPCs (connectable, healthy, not ejected), summed over proxies.',
    }))
    .withPanel(statPanel('Endpoints ejected', { expr: `sum(${gauge('switchyard_upstream_endpoint_ejected')})` }, {
      width: 6, thresholds: [[1, 'red']], description: 'Endpoints outlier detection has ejected now, summed over proxies.',
    }))
    .withPanel(statPanel('Endpoints failing health checks', { expr: `sum(${gauge('switchyard_upstream_endpoint_health', 'state="unhealthy"')})` }, {
      width: 6, thresholds: [[1, 'red']], description: 'Active gRPC health checks failing now, summed over proxies.',
    }))
    .withPanel(statPanel('Ejections in range', { expr: `sum(increase(switchyard_outlier_ejections_total${selector(ALL)}[$__range]))` }, {
      width: 6, thresholds: [[1, 'orange']], description: 'Outlier ejections over the dashboard\'s time range.',
    }))
    .withPanel(timeSeries('Available endpoints per cluster', [
      { expr: `min by (cluster) (sum by (job, instance, cluster) (${gauge('switchyard_upstream_endpoint_available')}))`, legend: 'available {{cluster}}' },
      { expr: `max by (cluster) (count by (job, instance, cluster) (${gauge('switchyard_upstream_endpoint_available')}))`, legend: 'known {{cluster}}' },
    ], { unit: 'short', min: 0, description: 'Per cluster, the proxy that sees the fewest available endpoints, against the endpoints discovery knows.' }))
    .withPanel(timeSeries('Ejected or failing endpoints', [
      { expr: `max by (cluster, endpoint) (${gauge('switchyard_upstream_endpoint_ejected')}) > 0`, legend: 'ejected {{cluster}} {{endpoint}}' },
      { expr: `max by (cluster, endpoint) (${gauge('switchyard_upstream_endpoint_health', 'state="unhealthy"')}) > 0`, legend: 'unhealthy {{cluster}} {{endpoint}}' },
    ], { unit: 'short', min: 0, max: 1, description: 'A line at 1 for as long as an endpoint is ejected (outlier detection) or failing its health checks, on any proxy.' }))
    .withPanel(timeSeries('Ejections per endpoint', [{ expr: `sum by (cluster, endpoint) (increase(switchyard_outlier_ejections_total${selector(ALL)}[$__rate_interval]))`, legend: '{{cluster}} {{endpoint}}' }], {
      unit: 'short', min: 0, description: 'New ejections in each interval. The alert SwitchyardEndpointEjectedForLong fires when one stays ejected for 10 minutes.',
    }))
    .withPanel(timeSeries('Endpoint weight', [{ expr: `max by (cluster, endpoint) (${gauge('switchyard_upstream_endpoint_weight')})`, legend: '{{cluster}} {{endpoint}}' }], {
      unit: 'short', min: 0, description: 'The weight the balancer uses: slow start ramps a new endpoint up from a fraction of its configured weight.',
    }))

    .withRow(row('Latency and load per endpoint'))
    .withPanel(timeSeries('Attempt p99 per endpoint', [{
      expr: `histogram_quantile(0.99, sum by (cluster, endpoint, le) (${rate('switchyard_upstream_rpc_duration_seconds_bucket', selector(ALL))}))`,
      legend: '{{cluster}} {{endpoint}}',
    }], { unit: 's', min: 0, legendCalcs: ['mean', 'max'], description: 'Per attempt, so a slow endpoint shows even when retries hide it from clients.' }))
    .withPanel(timeSeries('Attempts in flight per endpoint', [{ expr: `sum by (cluster, endpoint) (${gauge('switchyard_upstream_active_rpcs')})`, legend: '{{cluster}} {{endpoint}}' }], {
      unit: 'short', min: 0, description: 'What least_request and peak_ewma balance on.',
    }))

    .withRow(row('Circuit breakers, retry budget, pools'))
    .withPanel(timeSeries('Circuit breaker usage', [
      { expr: usage('switchyard_cluster_active_rpcs', 'max_requests'), legend: 'requests {{cluster}}' },
      { expr: usage('switchyard_cluster_pending_rpcs', 'max_pending_requests'), legend: 'pending {{cluster}}' },
      { expr: usage('switchyard_cluster_connections', 'max_connections'), legend: 'connections {{cluster}}' },
      { expr: usage('switchyard_cluster_active_retries', 'max_retries'), legend: 'retries {{cluster}}' },
    ], {
      unit: 'percentunit', min: 0, thresholds: [[0.8, 'orange'], [1, 'red']],
      description: 'Each gauge over its configured circuit_breakers limit, on the fullest proxy. At 100% the next RPC, retry or connection is turned away.',
    }))
    .withPanel(timeSeries('Turned away by limit', [{ expr: `sum by (cluster, limit) (${rate('switchyard_cluster_overflows_total', selector(ALL))})`, legend: '{{cluster}} {{limit}}' }], {
      unit: 'reqps', min: 0, description: 'RPCs, retries and connections refused by a circuit breaker, or retries refused because the retry budget was spent (limit="retry_budget").',
    }))
    .withPanel(timeSeries('Retries over attempts', [{
      expr: `sum by (cluster) (${rate('switchyard_retries_total', selector(ALL))}) / sum by (cluster) (${attempts()})`,
      legend: '{{cluster}}',
    }], { unit: 'percentunit', min: 0, description: 'How much of the load on the backends is retries: the retry budget caps this.' }))
    .withPanel(timeSeries('Pool connections', [
      { expr: `sum by (cluster, endpoint) (${gauge('switchyard_upstream_connections')})`, legend: '{{cluster}} {{endpoint}}' },
      { expr: `sum by (cluster) (${gauge('switchyard_cluster_pending_rpcs')})`, legend: 'pending RPCs {{cluster}}' },
    ], { unit: 'short', min: 0, description: 'HTTP/2 connections to each endpoint (a new one opens when a peer\'s max-concurrent-streams is reached), and RPCs waiting for a connection or stream slot.' })));
}
