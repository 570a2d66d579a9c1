/** "Switchyard / Security": who was refused and why, abuse, and the certificates' lifetimes. */
import { barGauge, dashboard, datasourceVariable, finish, labelVariable, row, statPanel, timeSeries } from '../panels.ts';
import { FAILED_REASON, rate, selector } from '../promql.ts';

const ALL = ['job=~"$job"'];
const handled = (extra: string) => rate('grpc_server_handled_total', selector(ALL, extra));
const REFUSED = 'grpc_code=~"PERMISSION_DENIED|UNAUTHENTICATED|RESOURCE_EXHAUSTED"';
const abusive = rate('switchyard_connections_closed_abusive_total', selector(ALL));

export function securityDashboard() {
  return finish(dashboard('switchyard-security', 'Switchyard / Security',
    'Denied and rate-limited RPCs, client connections closed for abuse, and certificate expiry on every proxy.')
    .withVariable(datasourceVariable())
    .withVariable(labelVariable('job', 'Job', 'switchyard_info'))

    .withRow(row('Now'))
    .withPanel(statPanel('Denied RPC/s', { expr: `sum(${handled('grpc_code=~"PERMISSION_DENIED|UNAUTHENTICATED"')})` }, {
      unit: 'reqps', width: 6, thresholds: [[1, 'orange']], description: 'PERMISSION_DENIED (authorization, or a deny-all route) and UNAUTHENTICATED.',
    }))
    .withPanel(statPanel('Rate-limited RPC/s', { expr: `sum(${handled('grpc_code="RESOURCE_EXHAUSTED"')})` }, {
      unit: 'reqps', width: 6, thresholds: [[1, 'orange']], description: 'RESOURCE_EXHAUSTED: token buckets, message size limits and circuit breakers; the reason panels below tell them apart.',
    }))
    .withPanel(statPanel('Abusive connections closed in range', { expr: `sum(increase(switchyard_connections_closed_abusive_total${selector(ALL)}[$__range]))` }, {
      width: 6, thresholds: [[1, 'red']], description: 'Client connections the proxy closed for breaking an HTTP/2 or gRPC abuse limit (rapid reset, floods, ...).',
    }))
    .withPanel(statPanel('Soonest certificate expiry', { expr: `min(switchyard_certificate_expiry_seconds${selector(ALL)})` }, {
      unit: 's', width: 6, thresholds: [[0, 'red'], [7 * 86400, 'orange'], [21 * 86400, 'green']],
      description: 'Time left on the certificate that expires first, over every proxy. The alert SwitchyardCertificateExpiringSoon fires under 7 days.',
    }))

    .withRow(row('Refusals'))
    .withPanel(timeSeries('Denied RPCs per route', [{ expr: `sum by (route, grpc_code) (${handled('grpc_code=~"PERMISSION_DENIED|UNAUTHENTICATED"')})`, legend: '{{route}} {{grpc_code}}' }], {
      unit: 'reqps', min: 0, legendCalcs: ['mean', 'max'], description: 'A spike on one route after a deploy is usually an authorization rule that no longer matches a caller.',
    }))
    .withPanel(timeSeries('Refused RPCs by catalogue reason', [{ expr: `sum by (reason) (${handled(`${REFUSED}, ${FAILED_REASON}`)})`, legend: '{{reason}}' }], {
      unit: 'reqps', min: 0, stacked: true, legendCalcs: ['mean', 'max'],
      description: 'Denials and RESOURCE_EXHAUSTED split by the failure catalogue\'s code: a rate limit, an overflow and an authorization refusal each have their own.',
    }))
    .withPanel(timeSeries('Rate-limited RPCs per route and reason', [{ expr: `sum by (route, reason) (${handled('grpc_code="RESOURCE_EXHAUSTED"')})`, legend: '{{route}}: {{reason}}' }], {
      unit: 'reqps', min: 0, legendCalcs: ['mean', 'max'], description: 'Which route\'s limits are biting.',
    }))
    .withPanel(timeSeries('Abusive connections closed per listener and limit', [{ expr: `sum by (listener, limit) (${abusive})`, legend: '{{listener}}: {{limit}}' }], {
      unit: 'cps', min: 0, description: 'The limit a client broke (docs/security.md, HTTP/2 and gRPC abuse protections).',
    }))

    .withRow(row('Certificates'))
    .withPanel(barGauge('Certificate expiry', { expr: `min by (source, subject, serial) (switchyard_certificate_expiry_seconds${selector(ALL)})`, legend: '{{source}}: {{subject}} ({{serial}})' }, {
      unit: 's', thresholds: [[0, 'red'], [7 * 86400, 'orange'], [21 * 86400, 'green']],
      description: 'Every loaded certificate, by the config field it came from (source). Negative once expired.',
    }))
    .withPanel(timeSeries('Certificate reloads', [{ expr: `sum by (result) (increase(switchyard_reloads_total${selector(ALL, 'kind="certificates"')}[$__rate_interval]))`, legend: '{{result}}' }], {
      unit: 'short', min: 0, description: 'A rotated certificate that did not load counts as failed, and the proxy keeps serving the old one.',
    }))
    .withPanel(timeSeries('Client connections per listener', [{ expr: `sum by (listener) (switchyard_listener_connections${selector(ALL)})`, legend: '{{listener}}' }], {
      unit: 'short', min: 0, description: 'Next to the abuse panel: a connection flood shows here first.',
    })));
}
