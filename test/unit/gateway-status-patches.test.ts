/** What the status writer sends: only changes, other controllers' route parents kept, transition times kept while a status holds. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { statusPatches } from '../../src/xds/gateway-api/status-writer.ts';
import { translateGatewayApi } from '../../src/xds/gateway-api/translate.ts';
import type { GatewayApiObjects } from '../../src/xds/gateway-api/model.ts';

const CONTROLLER = 'switchyard.io/gateway-controller';
const OTHER = { parentRef: { name: 'theirs' }, controllerName: 'example.com/other', conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: '', lastTransitionTime: '2025-01-01T00:00:00Z' }] };

function objects(routeStatus?: unknown): GatewayApiObjects {
  return {
    gatewayClasses: [{ metadata: { name: 'switchyard', generation: 1 }, spec: { controllerName: CONTROLLER } }],
    gateways: [{ metadata: { name: 'gw', namespace: 'ns', generation: 1 }, spec: { gatewayClassName: 'switchyard', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } }],
    grpcRoutes: [{ metadata: { name: 'r', namespace: 'ns', generation: 2, resourceVersion: '42' }, spec: { parentRefs: [{ name: 'gw' }, { name: 'theirs' }], rules: [] }, ...(routeStatus !== undefined && { status: routeStatus }) }],
    httpRoutes: [], referenceGrants: [], services: [], namespaces: [],
  } as unknown as GatewayApiObjects;
}

test('a route patch keeps the other controller\'s parent, carries the resourceVersion, and is not sent again once applied', () => {
  const current = objects({ parents: [OTHER] });
  const translation = translateGatewayApi(current, { controllerName: CONTROLLER, addresses: [{ type: 'IPAddress', value: '10.0.0.1' }] });
  const first = statusPatches(translation, current, CONTROLLER, '2026-12-04T10:00:00Z');
  const route = first.find((patch) => patch.kind === 'GRPCRoute')!;
  assert.equal(route.body.metadata?.resourceVersion, '42');
  const parents = (route.body.status as { parents: { controllerName: string; conditions: { lastTransitionTime: string; observedGeneration: number }[] }[] }).parents;
  assert.deepEqual(parents.map((p) => p.controllerName), ['example.com/other', CONTROLLER]);
  assert.ok(parents[1]!.conditions.every((c) => c.lastTransitionTime === '2026-12-04T10:00:00Z' && c.observedGeneration === 2));
  assert.deepEqual(first.map((patch) => patch.kind).sort(), ['GRPCRoute', 'Gateway', 'GatewayClass']);

  // Once written, the same translation later sends nothing, and keeps the transition times.
  const written = objects(route.body.status);
  (written.gatewayClasses[0] as { status?: unknown }).status = first.find((p) => p.kind === 'GatewayClass')!.body.status;
  (written.gateways[0] as { status?: unknown }).status = first.find((p) => p.kind === 'Gateway')!.body.status;
  assert.deepEqual(statusPatches(translation, written, CONTROLLER, '2026-12-04T11:00:00Z'), []);
});

test('a route that no longer names our Gateway loses our parent entry, and only ours', () => {
  const ours = { parentRef: { name: 'gw' }, controllerName: CONTROLLER, conditions: [] };
  const current = objects({ parents: [OTHER, ours] });
  (current.grpcRoutes[0] as unknown as { spec: { parentRefs: unknown[] } }).spec.parentRefs = [{ name: 'theirs' }];
  const translation = translateGatewayApi(current, { controllerName: CONTROLLER, addresses: [] });
  const route = statusPatches(translation, current, CONTROLLER, '2026-12-04T10:00:00Z').find((patch) => patch.kind === 'GRPCRoute')!;
  assert.deepEqual((route.body.status as { parents: unknown[] }).parents, [OTHER]);
});
