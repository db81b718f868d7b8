/**
 * A small Prometheus registry: counters, gauges and histograms rendered in
 * the text exposition format (version 0.0.4). Label values are escaped;
 * metric and label names are checked when registered.
 */

type Labels = Readonly<Record<string, string>>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

interface Metric {
  render(lines: string[]): void;
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.entries(labels);
  if (extra !== undefined) pairs.push(extra);
  if (pairs.length === 0) return "";
  return `{${pairs.map(([key, value]) => `${key}="${value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`).join(",")}}`;
}

function keyOf(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export class Counter implements Metric {
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = keyOf(labels);
    const entry = this.values.get(key) ?? { labels, value: 0 };
    entry.value += by;
    this.values.set(key, entry);
  }

  get(labels: Labels = {}): number {
    return this.values.get(keyOf(labels))?.value ?? 0;
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${value}`);
  }
}

export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number | readonly { readonly labels: Labels; readonly value: number }[],
  ) {}

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`);
    const value = this.read();
    if (typeof value === "number") lines.push(`${this.name} ${value}`);
    else for (const entry of value) lines.push(`${this.name}${labelText(entry.labels)} ${entry.value}`);
  }
}

export class Histogram implements Metric {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
  ) {
    this.counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.sum += value;
    this.count += 1;
    for (let index = 0; index < this.buckets.length; index += 1) if (value <= (this.buckets[index] as number)) this.counts[index] = (this.counts[index] as number) + 1;
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    this.buckets.forEach((bound, index) => lines.push(`${this.name}_bucket${labelText({}, ["le", String(bound)])} ${this.counts[index]}`));
    lines.push(`${this.name}_bucket${labelText({}, ["le", "+Inf"])} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
  }
}

/** Seconds, from 1 ms to 1 minute. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  counter(name: string, help: string): Counter {
    return this.add(name, new Counter(name, help));
  }

  gauge(name: string, help: string, read: () => number | readonly { readonly labels: Labels; readonly value: number }[]): Gauge {
    return this.add(name, new Gauge(name, help, read));
  }

  histogram(name: string, help: string, buckets: readonly number[] = LATENCY_BUCKETS): Histogram {
    return this.add(name, new Histogram(name, help, buckets));
  }

  /** The text exposition of every metric. */
  render(): string {
    const lines: string[] = [];
    for (const metric of this.metrics.values()) metric.render(lines);
    return `${lines.join("\n")}\n`;
  }

  private add<M extends Metric>(name: string, metric: M): M {
    if (!NAME.test(name)) throw new TypeError(`invalid metric name ${JSON.stringify(name)}`);
    if (this.metrics.has(name)) throw new TypeError(`metric ${name} is registered twice`);
    this.metrics.set(name, metric);
    return metric;
  }
}
