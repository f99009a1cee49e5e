/*
 * A small Prometheus registry (text exposition format 0.0.4) for the relay and the agent: no
 * client library, a handful of series per process. Label sets are fixed at declaration; values
 * are looked up by the joined label values.
 */

export type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** Numbers as Prometheus writes them (+Inf, NaN; integers without an exponent). */
function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

/** One labelled series of a metric, bound once: no label lookup per update (hot paths). */
export interface Series {
  readonly labels: Labels;
  value: number;
}

abstract class Metric<S extends Series = Series> {
  protected readonly series = new Map<string, S>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
  }
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  protected abstract create(labels: Labels): S;

  private key(labels: Labels): string {
    return this.labelNames.map((n) => labels[n] ?? '').join('\u0000');
  }

  /** The series of `labels` if it exists. */
  protected find(labels: Labels): S | undefined {
    return this.series.get(this.key(labels));
  }

  /** The series of `labels` (created, and rendered from then on, at the first call). */
  protected slot(labels: Labels): S {
    const key = this.key(labels);
    let s = this.series.get(key);
    if (!s) {
      const own: Labels = {};
      for (const n of this.labelNames) own[n] = labels[n] ?? '';
      s = this.create(own);
      this.series.set(key, s);
    }
    return s;
  }

  /**
   * A handle on the series of `labels` that finds it once, at its first use: a series appears
   * in the output when it is first updated, as with the label-taking methods.
   */
  protected lazy(labels: Labels): () => S {
    let s: S | undefined;
    return () => {
      s ??= this.slot(labels);
      return s;
    };
  }

  header(): string[] {
    return [`# HELP ${this.name} ${this.help.replace(/\n/g, ' ')}`, `# TYPE ${this.name} ${this.type}`];
  }

  render(): string[] {
    const out = this.header();
    for (const s of this.series.values()) out.push(`${this.name}${labelText(s.labels)} ${num(s.value)}`);
    return out;
  }
}

export interface BoundCounter {
  inc(by?: number): void;
}

export class Counter extends Metric {
  readonly type = 'counter';
  protected create(labels: Labels): Series {
    return { labels, value: 0 };
  }
  inc(labels: Labels = {}, by = 1): void {
    if (by < 0) throw new Error(`${this.name}: a counter only goes up`);
    this.slot(labels).value += by;
  }
  get(labels: Labels = {}): number {
    return this.slot(labels).value;
  }
  bind(labels: Labels = {}): BoundCounter {
    const s = this.lazy(labels);
    return {
      inc: (by = 1) => {
        if (by < 0) throw new Error(`${this.name}: a counter only goes up`);
        s().value += by;
      },
    };
  }
}

export interface BoundGauge {
  set(value: number): void;
  get(): number;
}

export class Gauge extends Metric {
  readonly type = 'gauge';
  protected create(labels: Labels): Series {
    return { labels, value: 0 };
  }
  set(labels: Labels, value: number): void {
    this.slot(labels).value = value;
  }
  get(labels: Labels = {}): number {
    return this.slot(labels).value;
  }
  bind(labels: Labels = {}): BoundGauge {
    const s = this.lazy(labels);
    return {
      set: (value) => {
        s().value = value;
      },
      get: () => s().value,
    };
  }
}

/** Seconds from 1 ms to 60 s: a change reaches a node in milliseconds, or is stuck for a while. */
export const SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

interface HistogramSeries extends Series {
  /** Per-bucket counts; render() makes them cumulative. */
  counts: number[];
  sum: number;
}

export interface BoundHistogram {
  observe(value: number): void;
}

export class Histogram extends Metric<HistogramSeries> {
  readonly type = 'histogram';

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[] = SECONDS_BUCKETS,
  ) {
    super(name, help, labelNames);
    for (let i = 1; i < buckets.length; i++)
      if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`${name}: buckets must increase`);
  }

  protected create(labels: Labels): HistogramSeries {
    return { labels, value: 0, counts: this.buckets.map(() => 0), sum: 0 };
  }

  private add(h: HistogramSeries, value: number): void {
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) h.counts[i]!++;
    h.sum += value;
    h.value++; // the count
  }

  observe(labels: Labels, value: number): void {
    this.add(this.slot(labels), value);
  }

  count(labels: Labels = {}): number {
    return this.find(labels)?.value ?? 0;
  }

  bind(labels: Labels = {}): BoundHistogram {
    const s = this.lazy(labels);
    return { observe: (value) => this.add(s(), value) };
  }

  override render(): string[] {
    const out = this.header();
    for (const h of this.series.values()) {
      let cumulative = 0;
      for (const [i, b] of this.buckets.entries()) {
        cumulative += h.counts[i]!;
        out.push(`${this.name}_bucket${labelText({ ...h.labels, le: num(b) })} ${cumulative}`);
      }
      out.push(`${this.name}_bucket${labelText({ ...h.labels, le: '+Inf' })} ${h.value}`);
      out.push(`${this.name}_sum${labelText(h.labels)} ${num(h.sum)}`);
      out.push(`${this.name}_count${labelText(h.labels)} ${h.value}`);
    }
    return out;
  }
}

export class Registry {
  private readonly metrics = new Map<string, Metric>();

  private add<M extends Metric>(m: M): M {
    if (this.metrics.has(m.name)) throw new Error(`metric ${m.name} is registered twice`);
    this.metrics.set(m.name, m);
    return m;
  }
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }
  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets?: readonly number[],
  ): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  /** The exposition text; every metric keeps its HELP/TYPE even before its first sample. */
  render(): string {
    const out: string[] = [];
    for (const m of this.metrics.values()) out.push(...m.render());
    return `${out.join('\n')}\n`;
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
