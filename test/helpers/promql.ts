/**
 * What a PromQL expression reads: metric names, and the labels it filters or groups each metric by.
 * Parsed with @prometheus-io/lezer-promql, the grammar Prometheus' own web UI uses, so a query this
 * accepts is one Prometheus accepts. Grafana's variables are substituted first, as Grafana would.
 */
import { parser } from '@prometheus-io/lezer-promql';
import type { SyntaxNode } from '@lezer/common';

export interface QueryUse {
  /** Every metric name the query reads (from `name{...}` and `{__name__="name"}`). */
  readonly metrics: Set<string>;
  /** metric → labels named in its selector's matchers. */
  readonly matcherLabels: Map<string, Set<string>>;
  /** `by (...)` labels of an aggregation, with the metrics under it (any of which may carry them). */
  readonly groupings: { readonly labels: string[]; readonly metrics: string[] }[];
  /** Syntax errors, as "at offset N: text". */
  readonly errors: string[];
}

/** Grafana's interval variables, as a dashboard would expand them, so the query parses. */
const GRAFANA_DURATIONS: Record<string, string> = { $__rate_interval: '1m', $__interval: '30s', $__range: '1h' };

export function expandGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, (name) => GRAFANA_DURATIONS[name]!);
}

function text(source: string, node: SyntaxNode): string {
  return source.slice(node.from, node.to);
}

function unquote(literal: string): string {
  return JSON.parse(literal.startsWith("'") ? `"${literal.slice(1, -1).replace(/"/g, '\\"')}"` : literal.startsWith('`') ? JSON.stringify(literal.slice(1, -1)) : literal) as string;
}

/** The metric a VectorSelector reads, by name or by a __name__ matcher. */
function selectorMetric(source: string, selector: SyntaxNode): string | undefined {
  const identifier = selector.getChild('Identifier');
  if (identifier) return text(source, identifier);
  for (const matcher of selector.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []) {
    const name = matcher.getChild('LabelName');
    const value = matcher.getChild('StringLiteral');
    if (name && value && text(source, name) === '__name__' && matcher.getChild('MatchOp')?.getChild('EqlSingle')) return unquote(text(source, value));
  }
  return undefined;
}

function selectorsUnder(node: SyntaxNode): SyntaxNode[] {
  const found: SyntaxNode[] = [];
  const cursor = node.cursor();
  do {
    if (cursor.type.name === 'VectorSelector') found.push(cursor.node);
  } while (cursor.next() && cursor.from < node.to);
  return found.filter((selector) => selector.from >= node.from && selector.to <= node.to);
}

export function analyseQuery(expr: string): QueryUse {
  const source = expandGrafanaVariables(expr);
  const tree = parser.parse(source);
  const use: QueryUse = { metrics: new Set(), matcherLabels: new Map(), groupings: [], errors: [] };
  const cursor = tree.cursor();
  do {
    const node = cursor.node;
    if (cursor.type.isError) {
      use.errors.push(`at offset ${cursor.from}: ${JSON.stringify(source.slice(Math.max(0, cursor.from - 20), cursor.from + 20))}`);
    } else if (cursor.type.name === 'VectorSelector') {
      const metric = selectorMetric(source, node);
      if (metric === undefined) continue;
      use.metrics.add(metric);
      const labels = use.matcherLabels.get(metric) ?? new Set<string>();
      for (const matcher of node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []) {
        const name = matcher.getChild('LabelName');
        if (name && text(source, name) !== '__name__') labels.add(text(source, name));
      }
      use.matcherLabels.set(metric, labels);
    } else if (cursor.type.name === 'AggregateExpr') {
      const modifier = node.getChild('AggregateModifier');
      if (!modifier?.getChild('By')) continue;
      const labels = (modifier.getChild('GroupingLabels')?.getChildren('LabelName') ?? []).map((label) => text(source, label));
      const metrics = selectorsUnder(node).map((selector) => selectorMetric(source, selector)).filter((name): name is string => name !== undefined);
      use.groupings.push({ labels, metrics });
    }
  } while (cursor.next());
  return use;
}

/** What one /metrics page exports: each sample name with the labels seen on its samples. */
export interface Exposition {
  /** Sample names (histograms as _bucket, _sum, _count) → label names seen. */
  readonly series: Map<string, Set<string>>;
  /** Sample names declared by # TYPE but with no sample yet (a labelled counter never incremented). */
  readonly withoutSamples: Set<string>;
}

const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] };

export function parseExposition(page: string, into: Exposition = { series: new Map(), withoutSamples: new Set() }): Exposition {
  for (const line of page.split('\n')) {
    const declared = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/.exec(line);
    if (declared) {
      for (const suffix of SUFFIXES[declared[2]!] ?? ['']) {
        const name = `${declared[1]}${suffix}`;
        if (!into.series.has(name)) {
          into.series.set(name, new Set());
          into.withoutSamples.add(name);
        }
      }
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!sample || line.startsWith('#')) continue;
    const labels = into.series.get(sample[1]!) ?? new Set<string>();
    for (const pair of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(pair[1]!);
    into.series.set(sample[1]!, labels);
    into.withoutSamples.delete(sample[1]!);
  }
  return into;
}
