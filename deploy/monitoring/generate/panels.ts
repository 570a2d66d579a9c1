/**
 * The few panel shapes Switchyard's Grafana dashboards use, built with the Grafana Foundation SDK
 * (@grafana/grafana-foundation-sdk), so every field is checked against Grafana's own types when
 * the project typechecks. Every panel reads the `datasource` variable, so a dashboard imports into
 * any Grafana whatever its Prometheus data source is called.
 */
import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import {
  BigValueColorMode, BigValueGraphMode, LegendDisplayMode, LegendPlacement, ReduceDataOptionsBuilder,
  StackingConfigBuilder, StackingMode, VisibilityMode, VizLegendOptionsBuilder, VizOrientation,
} from '@grafana/grafana-foundation-sdk/common';
import {
  DashboardBuilder, DatasourceVariableBuilder, QueryVariableBuilder, RowBuilder, ThresholdsConfigBuilder,
  ThresholdsMode, VariableRefresh, VariableSort, type Dashboard, type DataSourceRef,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder } from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as text from '@grafana/grafana-foundation-sdk/text';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

export const DATASOURCE: DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

/** One PromQL query and how its series are named in the legend. */
export interface Query {
  readonly expr: string;
  readonly legend?: string;
  /** Evaluate once at the end of the range (tables, bar gauges), not as a time series. */
  readonly instant?: boolean;
}

export interface PanelOptions {
  readonly description: string;
  readonly unit?: string;
  /** Grid width, of 24. */
  readonly width?: number;
  readonly height?: number;
  readonly min?: number;
  readonly max?: number;
  /** Stack the series (shares per endpoint add up to 1). */
  readonly stacked?: boolean;
  /** A legend table with these calculations (e.g. ['mean', 'max']) instead of a list. */
  readonly legendCalcs?: string[];
  /** [value, colour] steps after the base colour; a stat turns that colour past each value. */
  readonly thresholds?: readonly (readonly [number, string])[];
}

function target(query: Query) {
  const builder = new DataqueryBuilder().expr(query.expr).legendFormat(query.legend ?? '__auto');
  return query.instant ? builder.instant() : builder.range();
}

function thresholds(steps: PanelOptions['thresholds']) {
  return new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute)
    .steps([{ value: null, color: 'green' }, ...(steps ?? []).map(([value, color]) => ({ value, color }))]);
}

export function timeSeries(title: string, queries: readonly Query[], options: PanelOptions) {
  const panel = new timeseries.PanelBuilder()
    .title(title).description(options.description).datasource(DATASOURCE)
    .span(options.width ?? 12).height(options.height ?? 8)
    .unit(options.unit ?? 'short')
    .lineWidth(1).fillOpacity(options.stacked ? 40 : 8).showPoints(VisibilityMode.Never)
    .legend(new VizLegendOptionsBuilder().showLegend(true)
      .displayMode(options.legendCalcs ? LegendDisplayMode.Table : LegendDisplayMode.List)
      .placement(LegendPlacement.Bottom).calcs(options.legendCalcs ?? []));
  if (options.min !== undefined) panel.min(options.min);
  if (options.max !== undefined) panel.max(options.max);
  if (options.stacked) panel.stacking(new StackingConfigBuilder().mode(StackingMode.Normal));
  if (options.thresholds) panel.thresholds(thresholds(options.thresholds));
  for (const query of queries) panel.withTarget(target(query));
  return panel;
}

/** One number, with a sparkline behind it. */
export function statPanel(title: string, query: Query, options: PanelOptions) {
  const panel = new stat.PanelBuilder()
    .title(title).description(options.description).datasource(DATASOURCE)
    .span(options.width ?? 4).height(options.height ?? 4)
    .unit(options.unit ?? 'short')
    .graphMode(BigValueGraphMode.Area).colorMode(BigValueColorMode.Value)
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .thresholds(thresholds(options.thresholds))
    .withTarget(target(query));
  if (options.min !== undefined) panel.min(options.min);
  if (options.max !== undefined) panel.max(options.max);
  return panel;
}

/** One horizontal bar per series, from an instant query: "which certificate expires first". */
export function barGauge(title: string, query: Query, options: PanelOptions) {
  const panel = new bargauge.PanelBuilder()
    .title(title).description(options.description).datasource(DATASOURCE)
    .span(options.width ?? 12).height(options.height ?? 8)
    .unit(options.unit ?? 'short')
    .orientation(VizOrientation.Horizontal)
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .thresholds(thresholds(options.thresholds))
    .withTarget(target({ ...query, instant: true }));
  if (options.min !== undefined) panel.min(options.min);
  return panel;
}

/** A note on the dashboard itself: what a section shows and what it cannot show yet. */
export function note(title: string, markdown: string, width = 24, height = 3) {
  return new text.PanelBuilder().title(title).span(width).height(height).mode(text.TextMode.Markdown).content(markdown);
}

export function row(title: string) {
  return new RowBuilder(title);
}

export function datasourceVariable() {
  return new DatasourceVariableBuilder('datasource').label('Data source').type('prometheus');
}

/** A multi-value variable filled from a label's values; "All" matches everything (`.*`). */
export function labelVariable(name: string, label: string, metricSelector: string, labelName = name) {
  return new QueryVariableBuilder(name).label(label).datasource(DATASOURCE)
    .query(`label_values(${metricSelector}, ${labelName})`)
    .refresh(VariableRefresh.OnTimeRangeChanged).sort(VariableSort.AlphabeticalAsc)
    .multi(true).includeAll(true).allValue('.*');
}

export function dashboard(uid: string, title: string, description: string) {
  return new DashboardBuilder(title).uid(uid).description(description)
    .tags(['switchyard', 'grpc']).editable().refresh('30s')
    .time({ from: 'now-1h', to: 'now' }).timezone('browser');
}

/**
 * The built dashboard with what Grafana would otherwise fill in on import: unique panel ids and
 * one refId per query, so the JSON is stable and diffs stay small.
 */
export function finish(builder: DashboardBuilder): Dashboard {
  const built = builder.build();
  let id = 1;
  for (const panel of built.panels ?? []) {
    (panel as { id?: number }).id = id++;
    const targets = (panel as { targets?: { refId?: string }[] }).targets ?? [];
    targets.forEach((query, index) => { query.refId = String.fromCharCode(65 + index); });
  }
  return built;
}
