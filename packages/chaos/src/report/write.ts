/** Writes a run's report to a directory: the page, its three plots and the record itself. */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { RunRecord } from "../run-record.js";
import { renderReport } from "./html.js";
import { PLOT_NAMES, plotFileName, renderPlots } from "./plots.js";

export interface WrittenReport {
  /** The path of `report.html`. */
  readonly html: string;
  /** The paths of `latency.png`, `throughput.png` and `roles.png`, in that order. */
  readonly pngs: string[];
}

/**
 * Writes `latency.png`, `throughput.png`, `roles.png`, `run.json` (the record,
 * to render again or to check again) and, last, `report.html`, which refers to
 * the plots beside it: a `report.html` that exists has its plots. Creates the
 * directory if need be and replaces any report already in it.
 */
export async function writeReport(record: RunRecord, directory: string): Promise<WrittenReport> {
  await mkdir(directory, { recursive: true });
  const images = renderPlots(record);
  const pngs = PLOT_NAMES.map((name) => join(directory, plotFileName(name)));
  await Promise.all(PLOT_NAMES.map((name) => writeFile(join(directory, plotFileName(name)), images[name])));
  await writeFile(join(directory, "run.json"), `${JSON.stringify(record, null, 2)}\n`);
  const html = join(directory, "report.html");
  await writeFile(html, renderReport(record, { plots: { type: "files" } }));
  return { html, pngs };
}
