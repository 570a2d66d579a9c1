/**
 * Counters and histograms for the per-RPC series, kept as plain numbers that
 * the data path adds to and that prom-client's registry reads when scraped.
 *
 * prom-client's own metrics hash their label set into a string on every
 * inc() and observe(), label-bound children included: with the nine updates
 * an RPC makes, that was 3.5 KB of garbage per RPC, more than the HTTP/2
 * engine allocates for the whole RPC. Here a series is an object looked up
 * once (the caller keeps it), and an update is an addition.
 *
 * Both classes implement what prom-client's Registry reads from a metric
 * (name, help, type, aggregator, get(), reset()), so they sit in the same
 * registry and exposition as every other metric.
 */
import type { Registry } from 'prom-client';

type Labels = Readonly<Record<string, string>>;

interface MetricValue {
  readonly labels: Labels;
  readonly value: number;
  readonly metricName?: string;
}

interface MetricSnapshot {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly values: MetricValue[];
  readonly aggregator: 'sum';
}

interface CellMetricOptions {
  readonly name: string;
  readonly help: string;
  /** Every series has these labels (more are refused); the exposition lists them in the caller's order. */
  readonly labelNames: readonly string[];
  readonly registers: readonly Registry[];
}

export class CounterCell {
  readonly labels: Labels;
  value = 0;

  constructor(labels: Labels) {
    this.labels = labels;
  }
}

export class HistogramCell {
  readonly labels: Labels;
  /** Observations at or below each bound, not yet cumulative; the last slot is above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(labels: Labels, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

abstract class CellMetric<Cell extends { readonly labels: Labels }> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = 'sum' as const;
  protected readonly cells = new Map<string, Cell>();
  readonly #labelNames: readonly string[];

  constructor(options: CellMetricOptions) {
    this.name = options.name;
    this.help = options.help;
    this.#labelNames = options.labelNames;
    // The registry's own type wants prom-client's classes; it reads only what this class has.
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  /** The series of `labels`, made on first use; callers keep it rather than ask again per update. */
  cell(labels: Labels): Cell {
    const key = this.#keyOf(labels);
    let cell = this.cells.get(key);
    if (cell === undefined) {
      cell = this.create(labels);
      this.cells.set(key, cell);
    }
    return cell;
  }

  /** Drops every series whose labels include all of `match`. */
  remove(match: Labels): void {
    for (const [key, cell] of this.cells) {
      if (Object.entries(match).every(([name, value]) => cell.labels[name] === value)) this.cells.delete(key);
    }
  }

  reset(): void {
    this.cells.clear();
  }

  /** A label set as a map key, in labelNames order (label values may hold any character but NUL). */
  #keyOf(labels: Labels): string {
    const names = this.#labelNames;
    if (Object.keys(labels).length !== names.length) throw new Error(`${this.name}: labels ${Object.keys(labels).join(', ')}, expected ${names.join(', ')}`);
    let key = '';
    for (const name of names) {
      const value = labels[name];
      if (value === undefined) throw new Error(`${this.name}: label ${name} missing`);
      key += `${value}\u0000`;
    }
    return key;
  }

  protected abstract create(labels: Labels): Cell;
}

export class CellCounter extends CellMetric<CounterCell> {
  readonly type = 'counter' as const;

  get(): MetricSnapshot {
    const values: MetricValue[] = [];
    for (const cell of this.cells.values()) values.push({ labels: cell.labels, value: cell.value });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  protected create(labels: Labels): CounterCell {
    return new CounterCell(labels);
  }
}

export class CellHistogram extends CellMetric<HistogramCell> {
  readonly type = 'histogram' as const;
  readonly #bounds: readonly number[];

  constructor(options: CellMetricOptions & { readonly buckets: readonly number[] }) {
    super(options);
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
  }

  get(): MetricSnapshot {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const cell of this.cells.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += cell.counts[i]!;
        values.push({ labels: { le: String(this.#bounds[i]), ...cell.labels }, value: cumulative, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf', ...cell.labels }, value: cell.count, metricName: bucket });
      values.push({ labels: cell.labels, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels: cell.labels, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  protected create(labels: Labels): HistogramCell {
    return new HistogramCell(labels, this.#bounds);
  }
}
