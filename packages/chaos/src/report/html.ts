/**
 * The report as one HTML page: the summary line and the replay command, the
 * three plots, the checks with what a failed one found, the operations by
 * workload and kind, and the faults. Every piece of text from the record is
 * escaped: a check's detail quotes client values, which may hold anything.
 */
import type { OperationRecord, RunRecord } from "../run-record.js";
import { PLOT_HEIGHT, PLOT_WIDTH } from "./chart.js";
import { PLOT_NAMES, plotFileName, type PlotImages, type PlotName } from "./plots.js";
import { formatSeconds, outcomeCounts, summaryLine, verdict } from "./summary.js";

/** Where the page finds its plots. */
export type ReportPlots =
  /** Inside the page, as `data:` URIs: one file that can be sent on its own. */
  | { readonly type: "embedded"; readonly images: PlotImages }
  /** In `latency.png`, `throughput.png` and `roles.png` beside the page. */
  | { readonly type: "files" };

export interface ReportOptions {
  readonly plots: ReportPlots;
}

/** Each plot's alternative text: what it shows, for a reader who cannot see it. */
export const PLOT_ALT: Readonly<Record<PlotName, string>> = {
  latency: "Latency of each operation over time on a log scale, coloured by outcome, with the fault windows shaded",
  throughput: "Operations that took effect per second over time, one line per workload, with the fault windows shaded",
  roles: "Role of each replica over time, with the fault windows shaded",
};

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
.summary { font-size: 1.1em; padding: 0.5em 0.75em; border-left: 6px solid #888; background: #f5f5f5; }
.summary.PASS { border-color: #2ca02c; } .summary.FAIL { border-color: #d62728; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.failed { color: #d62728; font-weight: bold; } .passed { color: #2ca02c; }
pre { margin: 0; white-space: pre-wrap; }
img { display: block; margin-bottom: 1em; max-width: 100%; }
`;

/**
 * The page's one script, fixed text: once the page and its images have loaded
 * (or failed to), it marks `<body data-plots-loaded="N">` with how many of its
 * images the browser decoded, for a headless browser to check.
 */
const PLOTS_LOADED_SCRIPT = `addEventListener("load", () => {
  document.body.dataset.plotsLoaded = String([...document.images].filter((image) => image.complete && image.naturalWidth > 0).length);
});`;

export function renderReport(record: RunRecord, options: ReportOptions): string {
  const result = verdict(record.checks);
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<title>${escapeHtml(`Synod chaos run, seed ${record.seed}: ${result}`)}</title>`,
    `<style>${STYLE}</style>`,
    "</head>",
    "<body>",
    `<p class="summary ${result}">${escapeHtml(summaryLine(record))}</p>`,
    `<p>Replay: <code>${escapeHtml(record.replay)}</code></p>`,
    "<h2>Plots</h2>",
    ...PLOT_NAMES.map((name) => plotImage(name, options.plots)),
    "<h2>Checks</h2>",
    checksTable(record),
    "<h2>Operations</h2>",
    operationsTable(record),
    "<h2>Faults</h2>",
    faultsTable(record),
    `<script>${PLOTS_LOADED_SCRIPT}</script>`,
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

function plotImage(name: PlotName, plots: ReportPlots): string {
  const source =
    plots.type === "embedded" ? `data:image/png;base64,${plots.images[name].toString("base64")}` : plotFileName(name);
  return `<img id="${name}" src="${escapeHtml(source)}" alt="${escapeHtml(PLOT_ALT[name])}" width="${PLOT_WIDTH}" height="${PLOT_HEIGHT}">`;
}

/** A failed check's detail (for linearizability, the shortest failing history) is preformatted; a passed one's is a line. */
function checksTable(record: RunRecord): string {
  if (record.checks.length === 0) return "<p>No checks ran.</p>";
  const rows = record.checks.map((check) =>
    [
      escapeHtml(check.name),
      check.passed ? '<span class="passed">passed</span>' : '<span class="failed">FAILED</span>',
      check.passed ? escapeHtml(check.detail) : `<pre>${escapeHtml(check.detail)}</pre>`,
    ].map((cell) => `<td>${cell}</td>`),
  );
  return table(["check", "verdict", "detail"], rows);
}

function operationsTable(record: RunRecord): string {
  if (record.operations.length === 0) return "<p>No operations.</p>";
  const groups = new Map<string, { workload: string; kind: string; operations: OperationRecord[] }>();
  for (const operation of record.operations) {
    const key = JSON.stringify([operation.workload, operation.kind]);
    const group = groups.get(key) ?? { workload: operation.workload, kind: operation.kind, operations: [] };
    group.operations.push(operation);
    groups.set(key, group);
  }
  const rows = [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, { workload, kind, operations }]) => {
      const counts = outcomeCounts(operations);
      return [
        `<td>${escapeHtml(workload)}</td>`,
        `<td>${escapeHtml(kind)}</td>`,
        ...[counts.ok, counts.fail, counts.unknown].map((count) => `<td class="number">${count}</td>`),
      ];
    });
  return table(["workload", "kind", "ok", "fail", "unknown"], rows);
}

function faultsTable(record: RunRecord): string {
  if (record.faults.length === 0) return "<p>No faults.</p>";
  const rows = [...record.faults]
    .sort((a, b) => a.start - b.start)
    .map((fault) => [
      `<td>${escapeHtml(fault.kind)}</td>`,
      `<td>${escapeHtml(fault.target)}</td>`,
      ...[fault.start, fault.end, fault.end - fault.start].map((ms) => `<td class="number">${escapeHtml(formatSeconds(ms))}</td>`),
    ]);
  return table(["kind", "target", "start", "end", "length"], rows);
}

/** A table from escaped header names and rows of finished `<td>` cells. */
function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const head = `<tr>${headers.map((header) => `<th>${escapeHtml(header)}</th>`).join("")}</tr>`;
  return `<table>\n${head}\n${rows.map((cells) => `<tr>${cells.join("")}</tr>`).join("\n")}\n</table>`;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** `text` safe inside an element or a quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character] ?? character);
}
