/**
 * What the three plots share: the fixed layout, the palettes, the scales and
 * their ticks, and the frame (title, legend, axes, grid, fault windows) that
 * each plot draws its data into.
 *
 * Layout, top to bottom: the title with the legend to its right (two rows at
 * most), a strip of two lanes for the fault labels, the plot area, and the
 * time tick labels. Fault windows are shaded from the label strip down to the
 * time axis, so a label sits on its own band.
 */
import type { FaultWindow } from "../run-record.js";
import { GLYPH_HEIGHT, textWidth } from "./font.js";
import { Raster, hexColor, type Rgba } from "./png.js";
import { faultCounts } from "./summary.js";

export const PLOT_WIDTH = 900;
export const PLOT_HEIGHT = 300;
/** Where the data is drawn, in pixels; `right` and `bottom` are exclusive. */
export const PLOT_AREA = { left: 64, top: 48, right: 884, bottom: 276 } as const;

const LEGEND_ROWS_Y = [4, 15] as const;
const FAULT_LANES_Y = [27, 37] as const;
const FAULT_STRIP_TOP = 26;
const MARGIN = 8;

export const BACKGROUND = hexColor("#ffffff");
const INK = hexColor("#222222");
const AXIS = hexColor("#444444");
/** Translucent so that the fault bands show through it. */
const GRID = hexColor("#000000", 0.08);
const FAULT_BAND_OPACITY = 0.16;

/** Tableau's ten categorical colours: distinct, and readable on white. */
const CATEGORICAL = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"] as const;

export const OUTCOME_COLORS = {
  ok: hexColor("#1f77b4"),
  fail: hexColor("#d62728"),
  unknown: hexColor("#222222"),
} as const;

const ROLE_HEX: Readonly<Record<string, string>> = {
  leader: "#2ca02c",
  follower: "#9ecae1",
  candidate: "#f2c12e",
  rebuilding: "#9467bd",
  down: "#555555",
  paused: "#ff7f0e",
};
/** The roles a replica reports, in the order the legend lists them. */
export const KNOWN_ROLES = Object.keys(ROLE_HEX);

const FAULT_HEX: Readonly<Record<string, string>> = {
  kill: "#d62728",
  pause: "#ff7f0e",
  partition: "#9467bd",
  bitflip: "#8c564b",
  "torn-tail": "#e377c2",
  wipe: "#7f7f7f",
  membership: "#17becf",
};

/** The colour of the `index`th series (a workload's line). */
export function seriesColor(index: number): Rgba {
  return hexColor(CATEGORICAL[index % CATEGORICAL.length] ?? CATEGORICAL[0]);
}

export function roleColor(role: string): Rgba {
  return hexColor(ROLE_HEX[role] ?? colorForName(role));
}

/** A fault kind's colour: opaque for its label and legend swatch, translucent (`opacity`) for its band. */
export function faultColor(kind: string, opacity = 1): Rgba {
  return hexColor(FAULT_HEX[kind] ?? colorForName(kind), opacity);
}

/** A stable colour for a name the palettes do not know, so it looks the same in every report. */
function colorForName(name: string): string {
  let hash = 0;
  for (const character of name) hash = (hash * 31 + character.charCodeAt(0)) >>> 0;
  return CATEGORICAL[hash % CATEGORICAL.length] ?? CATEGORICAL[0];
}

export interface Tick {
  readonly label: string;
  readonly pixel: number;
}

export interface Scale {
  /** The pixel of `value`, clamped to the scale's range. */
  readonly pixel: (value: number) => number;
  readonly ticks: readonly Tick[];
}

/**
 * A linear scale from 0 to `max` onto `from`..`to` (`to` may be less than
 * `from`: a vertical axis grows upwards). With `roundUp`, the top of the
 * domain is raised to the next tick so that the highest value sits under it.
 */
export function linearScale(options: { max: number; from: number; to: number; maxTicks: number; roundUp: boolean }): Scale {
  const { from, to, maxTicks } = options;
  const max = options.max > 0 ? options.max : 1;
  const step = niceStep(max, maxTicks);
  const top = options.roundUp ? Math.ceil(max / step - 1e-9) * step : max;
  const pixel = (value: number): number => from + (to - from) * clamp(value / top, 0, 1);
  const ticks: Tick[] = [];
  for (let index = 0; index * step <= top * (1 + 1e-9); index += 1) {
    ticks.push({ label: formatNumber(index * step), pixel: pixel(index * step) });
  }
  return { pixel, ticks };
}

/**
 * A base-10 log scale covering `min`..`max` in whole decades; values below the
 * lowest decade sit on it. Ticks at each power of ten, and at 2 and 5 times it
 * when the scale spans two decades or fewer.
 */
export function logScale(options: { min: number; max: number; from: number; to: number }): Scale {
  const { from, to } = options;
  if (!(options.min > 0)) throw new Error(`logScale: min ${options.min} is not positive`);
  const lowDecade = Math.floor(Math.log10(options.min));
  const highDecade = Math.max(lowDecade + 1, Math.ceil(Math.log10(Math.max(options.max, options.min))));
  const low = 10 ** lowDecade;
  const span = highDecade - lowDecade;
  const pixel = (value: number): number =>
    from + (to - from) * clamp((Math.log10(Math.max(value, low)) - lowDecade) / span, 0, 1);
  const multiples = span <= 2 ? [1, 2, 5] : [1];
  const ticks: Tick[] = [];
  for (let decade = lowDecade; decade <= highDecade; decade += 1) {
    for (const multiple of multiples) {
      const value = multiple * 10 ** decade;
      if (decade < highDecade || multiple === 1) ticks.push({ label: formatNumber(value), pixel: pixel(value) });
    }
  }
  return { pixel, ticks };
}

/** The smallest of 1, 2 or 5 times a power of ten that cuts `span` into at most `maxSteps` steps. */
export function niceStep(span: number, maxSteps: number): number {
  if (!(span > 0) || !(maxSteps >= 1)) throw new Error(`niceStep: span ${span} in ${maxSteps} steps`);
  const rough = span / maxSteps;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  for (const multiple of [1, 2, 5]) if (multiple * magnitude >= rough) return multiple * magnitude;
  return 10 * magnitude;
}

/** A tick value without floating-point noise: `0.30000000000000004` reads `0.3`. */
function formatNumber(value: number): string {
  return String(Number(value.toPrecision(6)));
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

/** The time axis every plot shares: milliseconds since the run began, labelled in seconds. */
export function timeScale(durationMs: number): Scale {
  const seconds = linearScale({
    max: Math.max(durationMs, 1) / 1000,
    from: PLOT_AREA.left,
    to: PLOT_AREA.right - 1,
    maxTicks: Math.floor((PLOT_AREA.right - PLOT_AREA.left) / 60),
    roundUp: false,
  });
  return { pixel: (ms) => seconds.pixel(ms / 1000), ticks: seconds.ticks };
}

export interface LegendEntry {
  readonly label: string;
  readonly color: Rgba;
  /** `cross` for a marker drawn as an x (operations with no answer); a filled square otherwise. */
  readonly marker?: "cross";
}

export interface Frame {
  readonly title: string;
  readonly legend: readonly LegendEntry[];
  readonly time: Scale;
  /** Labels along the vertical axis, at their pixel rows. */
  readonly yTicks: readonly Tick[];
  /** Whether to draw a horizontal grid line at each vertical tick (not for rows of a timeline). */
  readonly yGrid: boolean;
  readonly faults: readonly FaultWindow[];
}

/** A blank plot with its frame drawn, ready for data inside `PLOT_AREA`. */
export function drawFrame(frame: Frame): Raster {
  const raster = new Raster(PLOT_WIDTH, PLOT_HEIGHT);
  raster.fill(BACKGROUND);
  drawFaultBands(raster, frame.faults, frame.time);
  drawGridAndAxes(raster, frame);
  raster.text(MARGIN, LEGEND_ROWS_Y[0], frame.title, INK);
  drawLegend(raster, frame.legend, MARGIN + textWidth(frame.title) + 24);
  return raster;
}

/** Legend entries for the fault kinds in `faults`, most frequent first, each swatch the pale colour of its bands. */
export function faultLegend(faults: readonly FaultWindow[]): LegendEntry[] {
  return faultCounts(faults).map(([kind, count]) => ({ label: `${kind} ${count}`, color: faultColor(kind, FAULT_BAND_OPACITY) }));
}

function drawFaultBands(raster: Raster, faults: readonly FaultWindow[], time: Scale): void {
  const laneEnds = FAULT_LANES_Y.map(() => -Infinity);
  for (const fault of [...faults].sort((a, b) => a.start - b.start)) {
    const left = time.pixel(fault.start);
    const width = Math.max(1, time.pixel(fault.end) - left);
    raster.rect(left, FAULT_STRIP_TOP, width, PLOT_AREA.bottom - FAULT_STRIP_TOP, faultColor(fault.kind, FAULT_BAND_OPACITY));
    // Each label takes the first lane free at its start; a label with no lane free is left out (the legend still names the colour).
    for (const label of [`${fault.kind} ${fault.target}`, fault.kind]) {
      const labelLeft = Math.round(left) + 2;
      const lane = laneEnds.findIndex((end) => end < labelLeft);
      const right = labelLeft + textWidth(label);
      if (lane === -1 || right > PLOT_WIDTH - MARGIN) continue;
      raster.text(labelLeft, FAULT_LANES_Y[lane] ?? FAULT_LANES_Y[0], label, faultColor(fault.kind));
      laneEnds[lane] = right + 4;
      break;
    }
  }
}

function drawGridAndAxes(raster: Raster, frame: Frame): void {
  const { left, top, right, bottom } = PLOT_AREA;
  for (const tick of frame.time.ticks) {
    raster.line(tick.pixel, top, tick.pixel, bottom - 1, GRID);
    raster.line(tick.pixel, bottom, tick.pixel, bottom + 3, AXIS);
    raster.text(tick.pixel - textWidth(tick.label) / 2, bottom + 6, tick.label, INK);
  }
  for (const tick of frame.yTicks) {
    if (frame.yGrid) raster.line(left, tick.pixel, right - 1, tick.pixel, GRID);
    raster.line(left - 4, tick.pixel, left - 1, tick.pixel, AXIS);
    raster.text(left - 7 - textWidth(tick.label), tick.pixel - Math.floor(GLYPH_HEIGHT / 2), tick.label, INK);
  }
  raster.line(left - 1, top, left - 1, bottom, AXIS);
  raster.line(left - 1, bottom, right - 1, bottom, AXIS);
  raster.text(MARGIN, bottom + 6, "time (s)", INK);
}

/** Legend entries left to right from `start`, wrapping once; what does not fit is counted as `+N`. */
function drawLegend(raster: Raster, entries: readonly LegendEntry[], start: number): void {
  const limit = PLOT_WIDTH - MARGIN;
  let x = start;
  let row = 0;
  for (const [index, entry] of entries.entries()) {
    const width = 12 + textWidth(entry.label);
    if (x + width > limit) {
      if (row === LEGEND_ROWS_Y.length - 1) {
        raster.text(x, LEGEND_ROWS_Y[row] ?? 0, `+${entries.length - index}`, INK);
        return;
      }
      row += 1;
      x = start;
    }
    const y = LEGEND_ROWS_Y[row] ?? 0;
    drawMarker(raster, x + 3, y + 3, entry);
    raster.text(x + 10, y, entry.label, INK);
    x += width + 10;
  }
}

/** A legend's or a plot's marker, centred on (x, y). */
export function drawMarker(raster: Raster, x: number, y: number, entry: Pick<LegendEntry, "color" | "marker">): void {
  if (entry.marker === "cross") {
    raster.line(x - 3, y - 3, x + 3, y + 3, entry.color);
    raster.line(x - 3, y + 3, x + 3, y - 3, entry.color);
  } else {
    raster.rect(x - 3, y - 3, 7, 7, entry.color);
  }
}
