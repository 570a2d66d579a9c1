/**
 * The committed Grafana dashboards and PrometheusRule are exactly what the generator writes
 * (deploy/monitoring/generate/), and each dashboard is well formed for an import into any Grafana:
 * its data source is a variable, panel ids are unique, every query has a refId, every panel says
 * what it shows.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DASHBOARDS, MONITORING_DIR, generatedFiles } from '../../deploy/monitoring/generate/main.ts';

interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { refId?: string; expr?: string; datasource?: unknown }[];
}

describe('deploy/monitoring generated files', () => {
  test('the committed dashboards and PrometheusRule are what `npm run monitoring:generate` writes', () => {
    const stale: string[] = [];
    for (const [file, content] of generatedFiles()) {
      if (readFileSync(path.join(MONITORING_DIR, file), 'utf8') !== content) stale.push(file);
    }
    assert.deepEqual(stale, [], 'run npm run monitoring:generate and commit the result');
  });

  for (const file of Object.keys(DASHBOARDS)) {
    test(`${file} is well formed`, () => {
      const dashboard = JSON.parse(readFileSync(path.join(MONITORING_DIR, file), 'utf8')) as {
        uid: string; title: string; panels: Panel[]; templating: { list: { name: string; type: string; query?: unknown }[] };
      };
      assert.match(dashboard.uid, /^switchyard-[a-z-]+$/);
      assert.match(dashboard.title, /^Switchyard \/ /);
      const datasource = dashboard.templating.list.find((v) => v.name === 'datasource');
      assert.deepEqual({ type: datasource?.type, query: datasource?.query }, { type: 'datasource', query: 'prometheus' });

      const ids = dashboard.panels.map((panel) => panel.id);
      assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
      const queried = dashboard.panels.filter((panel) => panel.type !== 'row' && panel.type !== 'text');
      assert.ok(queried.length >= 8, `${queried.length} panels with queries`);
      for (const panel of queried) {
        const where = `panel "${panel.title}"`;
        assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, `${where}: the datasource variable`);
        assert.ok(panel.description && panel.description.length > 10, `${where}: a description`);
        assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${where}: fits the 24-column grid`);
        assert.ok((panel.targets ?? []).length > 0, `${where}: has a query`);
        const refIds = (panel.targets ?? []).map((target) => target.refId);
        assert.equal(new Set(refIds).size, refIds.length, `${where}: refIds unique`);
        for (const target of panel.targets ?? []) assert.ok(target.expr && target.refId, `${where}: every target has expr and refId`);
      }
      // Panels laid out top to bottom without overlapping: no two share a grid cell.
      const cells = new Set<string>();
      for (const panel of dashboard.panels) {
        for (let x = panel.gridPos.x; x < panel.gridPos.x + panel.gridPos.w; x++) {
          for (let y = panel.gridPos.y; y < panel.gridPos.y + panel.gridPos.h; y++) {
            const cell = `${x},${y}`;
            assert.ok(!cells.has(cell), `panel "${panel.title}" overlaps another at ${cell}`);
            cells.add(cell);
          }
        }
      }
    });
  }
});
