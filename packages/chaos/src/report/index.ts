/** The report of a chaos run: its plots as PNGs, an HTML page, a line for the terminal, and all of it written to a directory. */
export { renderReport, escapeHtml, type ReportOptions, type ReportPlots } from "./html.js";
export { PLOT_NAMES, latencyPlot, plotFileName, renderPlots, rolePlot, throughputPlot, type PlotImages, type PlotName } from "./plots.js";
export { Raster, encodePng, hexColor, type Rgba } from "./png.js";
export { campaignSummary, summaryLine, verdict, type Verdict } from "./summary.js";
export { writeReport, type WrittenReport } from "./write.js";
