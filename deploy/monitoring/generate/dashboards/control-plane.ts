/**
 * "Switchyard / Control plane": the xDS control plane's streams, pushes and NACKs, and the proxies'
 * side of the same link (connected, how stale their config is).
 */
import { dashboard, datasourceVariable, finish, labelVariable, note, row, statPanel, timeSeries } from '../panels.ts';
import { rate } from '../promql.ts';

const CP = '{job=~"$control_plane_job"}';
const PROXY = '{job=~"$job"}';
const pushes = `sum(${rate('switchyard_xds_acks_total', CP)}) + sum(${rate('switchyard_xds_nacks_total', CP)})`;

export function controlPlaneDashboard() {
  return finish(dashboard('switchyard-control-plane', 'Switchyard / Control plane',
    'The xDS control plane (switchyard control-plane): ADS streams, responses acknowledged and refused, refused streams, resources; and each proxy\'s view of it.')
    .withVariable(datasourceVariable())
    .withVariable(labelVariable('control_plane_job', 'Control plane job', 'switchyard_xds_streams', 'job'))
    .withVariable(labelVariable('job', 'Proxy job', 'switchyard_xds_connected', 'job'))

    .withRow(row('Now'))
    .withPanel(statPanel('Connected clients', { expr: `sum(switchyard_xds_streams${CP})` }, {
      width: 6, description: 'Open ADS streams over every control plane replica: proxies, agents and proxyless clients.',
    }))
    .withPanel(statPanel('Proxies disconnected', { expr: `count(switchyard_xds_connected${PROXY} == 0) or vector(0)` }, {
      width: 6, thresholds: [[1, 'red']], description: 'Proxies serving their last good config without a control plane. The alert SwitchyardXdsDisconnected fires after 5 minutes.',
    }))
    .withPanel(statPanel('NACK ratio', { expr: `sum(${rate('switchyard_xds_nacks_total', CP)}) / (${pushes})` }, {
      unit: 'percentunit', width: 6, thresholds: [[0.001, 'red']], description: 'Responses clients refused, over all answered responses. Anything above 0 is a config a client could not take.',
    }))
    .withPanel(statPanel('Oldest proxy config', { expr: `max(time() - switchyard_xds_last_update_timestamp_seconds${PROXY})` }, {
      unit: 's', width: 6, description: 'Time since the proxy that heard from the control plane longest ago accepted an update. Large and growing while disconnected; large and flat is a quiet config.',
    }))

    .withRow(row('Control plane'))
    .withPanel(timeSeries('ADS streams per replica', [{ expr: `sum by (instance) (switchyard_xds_streams${CP})`, legend: '{{instance}}' }], {
      unit: 'short', min: 0, description: 'Clients reconnect to another replica when one goes away: the lines swap, the sum stays.',
    }))
    .withPanel(timeSeries('Pushes answered per second, by type', [
      { expr: `sum by (type) (${rate('switchyard_xds_acks_total', CP)})`, legend: 'ACK {{type}}' },
      { expr: `sum by (type) (${rate('switchyard_xds_nacks_total', CP)})`, legend: 'NACK {{type}}' },
    ], { unit: 'short', min: 0, description: 'Every response the control plane pushes is answered by an ACK or a NACK: their sum is the push rate.' }))
    .withPanel(timeSeries('Refused streams by reason', [{ expr: `sum by (reason) (${rate('switchyard_xds_refused_streams_total', CP)})`, legend: '{{reason}}' }], {
      unit: 'short', min: 0, description: 'Streams refused for an unknown identity, a node id the identity may not claim, or a limit (as a gRPC status name).',
    }))
    .withPanel(timeSeries('Resources served', [{ expr: `max by (type) (switchyard_xds_resources${CP})`, legend: '{{type}}' }], {
      unit: 'short', min: 0, description: 'Listeners, routes, clusters and endpoint assignments in the snapshot.',
    }))
    .withPanel(timeSeries('Control plane memory', [
      { expr: `max by (instance) (process_resident_memory_bytes${CP})`, legend: 'resident {{instance}}' },
    ], { unit: 'bytes', min: 0, description: 'Resident memory per replica (docs/control-plane.md gives measured figures per number of streams).' }))
    .withPanel(timeSeries('Control plane CPU', [{ expr: `sum by (instance) (${rate('process_cpu_seconds_total', CP)})`, legend: '{{instance}}' }], {
      unit: 'percentunit', min: 0, description: 'CPU seconds per second; 1 is one core.',
    }))
    .withPanel(note('Not shown', 'Push latency (from a change to the last ACK) is not exported by the control plane yet, so it has no panel.', 24, 2))

    .withRow(row('Proxies'))
    .withPanel(timeSeries('Proxies connected', [
      { expr: `sum(switchyard_xds_connected${PROXY})`, legend: 'connected' },
      { expr: `count(switchyard_xds_connected${PROXY} == 0)`, legend: 'disconnected' },
    ], { unit: 'short', min: 0, description: 'From the proxies\' side: an ADS stream up (1) or serving the last good config (0).' }))
    .withPanel(timeSeries('Updates per second by type and result', [{ expr: `sum by (type, result) (${rate('switchyard_xds_updates_total', PROXY)})`, legend: '{{type}} {{result}}' }], {
      unit: 'short', min: 0, description: 'xDS responses the proxies accepted (ack) and refused (nack).',
    }))
    .withPanel(timeSeries('Time since each proxy\'s last update', [{ expr: `time() - switchyard_xds_last_update_timestamp_seconds${PROXY}`, legend: '{{instance}}' }], {
      unit: 's', min: 0, description: 'How old each proxy\'s config is.',
    }))
    .withPanel(timeSeries('xDS reloads', [{ expr: `sum by (result) (increase(switchyard_reloads_total{job=~"$job", kind="xds"}[$__rate_interval]))`, legend: '{{result}}' }], {
      unit: 'short', min: 0, description: 'Routes and clusters from the control plane applied (ok) or rejected (failed); endpoint changes reload nothing.',
    })));
}
