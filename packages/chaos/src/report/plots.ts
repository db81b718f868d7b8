/**
 * The report's three plots of a run, each a PNG of `PLOT_WIDTH` x
 * `PLOT_HEIGHT` over the run's time, with the fault windows shaded: latency of
 * each operation, throughput of each workload, and each replica's role.
 */
import type { OperationRecord, RoleSample, RunRecord } from "../run-record.js";
import {
  KNOWN_ROLES,
  OUTCOME_COLORS,
  PLOT_AREA,
  drawFrame,
  drawMarker,
  faultLegend,
  linearScale,
  logScale,
  niceStep,
  roleColor,
  seriesColor,
  timeScale,
  type Tick,
} from "./chart.js";
import { encodePng } from "./png.js";
import { outcomeCounts } from "./summary.js";

export const PLOT_NAMES = ["latency", "throughput", "roles"] as const;
export type PlotName = (typeof PLOT_NAMES)[number];
/** Each plot as a PNG file's bytes. */
export type PlotImages = Readonly<Record<PlotName, Buffer>>;

/** The file a plot is written to, beside the report that shows it. */
export function plotFileName(name: PlotName): string {
  return `${name}.png`;
}

export function renderPlots(record: RunRecord): PlotImages {
  return { latency: latencyPlot(record), throughput: throughputPlot(record), roles: rolePlot(record) };
}

/** Below this the latency axis does not go: a faster answer sits on the bottom edge. */
const LATENCY_FLOOR_MS = 0.01;
const DOT_RADIUS = 2;

/**
 * One dot per answered operation at (start, latency) on a log scale, blue if
 * it took effect and red if it failed; failures are drawn over successes so
 * that a few stand out. An operation with no answer has no latency: it is a
 * cross on the top edge at its start.
 */
export function latencyPlot(record: RunRecord): Buffer {
  const answered = record.operations.filter((operation) => operation.end !== undefined);
  const latencies = answered.map(latencyMs);
  const y = logScale({
    min: Math.max(LATENCY_FLOOR_MS, minimum(latencies.filter((latency) => latency > 0), 1)),
    max: maximum(latencies, 1),
    from: PLOT_AREA.bottom - 1 - DOT_RADIUS,
    // Clear of the row of crosses on the top edge.
    to: PLOT_AREA.top + 12,
  });
  const time = timeScale(record.durationMs);
  const counts = outcomeCounts(record.operations);
  const raster = drawFrame({
    title: "latency per operation (ms, log scale)",
    legend: [
      { label: `ok ${counts.ok}`, color: OUTCOME_COLORS.ok },
      { label: `fail ${counts.fail}`, color: OUTCOME_COLORS.fail },
      { label: `unknown ${counts.unknown} (no answer)`, color: OUTCOME_COLORS.unknown, marker: "cross" },
      ...faultLegend(record.faults),
    ],
    time,
    yTicks: y.ticks,
    yGrid: true,
    faults: record.faults,
  });
  for (const outcome of ["ok", "fail"] as const) {
    for (const operation of answered) {
      if (operation.outcome !== outcome) continue;
      raster.dot(timePixel(time.pixel, operation.start), y.pixel(latencyMs(operation)), DOT_RADIUS, OUTCOME_COLORS[outcome]);
    }
  }
  for (const operation of record.operations) {
    if (operation.outcome !== "unknown") continue;
    drawMarker(raster, timePixel(time.pixel, operation.start), PLOT_AREA.top + 3, { color: OUTCOME_COLORS.unknown, marker: "cross" });
  }
  return encodePng(raster);
}

/** The least of `values`, or `otherwise` when that is less or there are none (no spread: a run has too many operations for one call's arguments). */
function minimum(values: readonly number[], otherwise: number): number {
  return values.reduce((least, value) => Math.min(least, value), otherwise);
}

/** The greatest of `values`, or `otherwise` when that is greater or there are none. */
function maximum(values: readonly number[], otherwise: number): number {
  return values.reduce((greatest, value) => Math.max(greatest, value), otherwise);
}

function latencyMs(operation: OperationRecord): number {
  return Math.max(0, (operation.end ?? operation.start) - operation.start);
}

/** A time's pixel kept clear of the axes by a dot's radius. */
function timePixel(pixel: (ms: number) => number, ms: number): number {
  return Math.min(PLOT_AREA.right - 1 - DOT_RADIUS, Math.max(PLOT_AREA.left + DOT_RADIUS, pixel(ms)));
}

/** At most this many buckets, so that each is a few pixels wide: longer runs get wider buckets. */
const THROUGHPUT_BUCKETS_MAX = Math.floor((PLOT_AREA.right - PLOT_AREA.left) / 4);

/**
 * Operations that took effect per second, one line per workload, counted when
 * they were answered: in 1 s buckets, or wider ones (2, 5, 10 s...) for a run
 * too long for 1 s buckets to be told apart. A last bucket cut short by the
 * end of the run is divided by the time it covers.
 */
export function throughputPlot(record: RunRecord): Buffer {
  const durationMs = Math.max(record.durationMs, 1);
  const bucketMs = 1000 * Math.max(1, niceStep(durationMs / 1000, THROUGHPUT_BUCKETS_MAX));
  const bucketCount = Math.ceil(durationMs / bucketMs);
  const workloads = [...new Set(record.operations.map((operation) => operation.workload))].sort();
  const rates = workloads.map((workload) => {
    const counts = new Array<number>(bucketCount).fill(0);
    for (const operation of record.operations) {
      if (operation.workload !== workload || operation.outcome !== "ok" || operation.end === undefined) continue;
      const bucket = Math.min(bucketCount - 1, Math.max(0, Math.floor(operation.end / bucketMs)));
      counts[bucket] = (counts[bucket] ?? 0) + 1;
    }
    return counts.map((count, bucket) => (count * 1000) / (Math.min(durationMs, (bucket + 1) * bucketMs) - bucket * bucketMs));
  });
  const y = linearScale({
    max: maximum(rates.flat(), 1),
    from: PLOT_AREA.bottom - 1,
    to: PLOT_AREA.top + 8,
    maxTicks: 5,
    roundUp: true,
  });
  const time = timeScale(durationMs);
  const raster = drawFrame({
    title: `ok operations per second (${bucketMs / 1000} s buckets)`,
    legend: [...workloads.map((workload, index) => ({ label: workload, color: seriesColor(index) })), ...faultLegend(record.faults)],
    time,
    yTicks: y.ticks,
    yGrid: true,
    faults: record.faults,
  });
  for (const [index, series] of rates.entries()) {
    const points = series.map((rate, bucket) => ({ x: time.pixel(Math.min(durationMs, (bucket + 0.5) * bucketMs)), y: y.pixel(rate) }));
    for (const [bucket, point] of points.entries()) {
      const previous = points[bucket - 1];
      if (previous !== undefined) raster.line(previous.x, previous.y, point.x, point.y, seriesColor(index), 2);
      else if (points.length === 1) raster.dot(point.x, point.y, 2, seriesColor(index));
    }
  }
  return encodePng(raster);
}

/**
 * One row per replica, its role as coloured spans: each sample holds from its
 * time until the replica's next sample or the end of the run. Before a
 * replica's first sample its row is blank.
 */
export function rolePlot(record: RunRecord): Buffer {
  const byNode = samplesByNode(record.roles);
  const nodes = [...byNode.keys()].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  const pitch = (PLOT_AREA.bottom - PLOT_AREA.top) / Math.max(1, nodes.length);
  const barHeight = Math.max(2, Math.round(pitch * 0.6));
  const rowCentre = (row: number): number => PLOT_AREA.top + pitch * (row + 0.5);
  const roles = [...new Set(record.roles.map((sample) => sample.role))].sort(
    (a, b) => roleRank(a) - roleRank(b) || a.localeCompare(b),
  );
  const time = timeScale(record.durationMs);
  const raster = drawFrame({
    title: "role of each replica",
    legend: [...roles.map((role) => ({ label: role, color: roleColor(role) })), ...faultLegend(record.faults)],
    time,
    yTicks: nodes.map((node, row): Tick => ({ label: node, pixel: Math.round(rowCentre(row)) })),
    yGrid: false,
    faults: record.faults,
  });
  for (const [row, node] of nodes.entries()) {
    const samples = byNode.get(node) ?? [];
    for (const [index, sample] of samples.entries()) {
      const left = time.pixel(sample.time);
      const right = time.pixel(samples[index + 1]?.time ?? record.durationMs);
      raster.rect(left, Math.round(rowCentre(row) - barHeight / 2), Math.max(1, right - left), barHeight, roleColor(sample.role));
    }
  }
  return encodePng(raster);
}

function samplesByNode(samples: readonly RoleSample[]): Map<string, RoleSample[]> {
  const byNode = new Map<string, RoleSample[]>();
  for (const sample of samples) {
    const list = byNode.get(sample.node) ?? [];
    list.push(sample);
    byNode.set(sample.node, list);
  }
  for (const list of byNode.values()) list.sort((a, b) => a.time - b.time);
  return byNode;
}

/** Known roles in their legend order, then any other role. */
function roleRank(role: string): number {
  const rank = KNOWN_ROLES.indexOf(role);
  return rank === -1 ? KNOWN_ROLES.length : rank;
}
