import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { BACKGROUND, OUTCOME_COLORS, PLOT_AREA, PLOT_HEIGHT, PLOT_WIDTH, linearScale, logScale, niceStep, roleColor, seriesColor, timeScale } from "../src/report/chart.js";
import { textWidth } from "../src/report/font.js";
import { escapeHtml, renderReport } from "../src/report/html.js";
import { latencyPlot, renderPlots, rolePlot, throughputPlot } from "../src/report/plots.js";
import { Raster, encodePng, hexColor, type Rgba } from "../src/report/png.js";
import { campaignSummary, summaryLine } from "../src/report/summary.js";
import { writeReport } from "../src/report/write.js";
import type { RunRecord } from "../src/run-record.js";
import { FAULTS, syntheticRecord } from "./fixtures.js";
import { type DecodedPng, decodePng, pngChunks } from "./png-decode.js";

/** Decodes a PNG `encodePng` wrote, checking its exact layout on the way: IHDR, one IDAT, IEND; 8-bit RGBA; every row filter 0. */
function decodeOwnPng(png: Buffer): DecodedPng {
  const chunks = pngChunks(png);
  expect(chunks.map((chunk) => chunk.type)).toEqual(["IHDR", "IDAT", "IEND"]);
  const header = chunks[0]!.data;
  expect([...header.subarray(8)]).toEqual([8, 6, 0, 0, 0]);
  const width = header.readUInt32BE(0);
  const scanlines = inflateSync(chunks[1]!.data);
  for (let start = 0; start < scanlines.length; start += width * 4 + 1) expect(scanlines[start]).toBe(0);
  return decodePng(png);
}

function pixelAt(image: DecodedPng, x: number, y: number): Rgba {
  const offset = (y * image.width + x) * 4;
  return [image.pixels[offset]!, image.pixels[offset + 1]!, image.pixels[offset + 2]!, image.pixels[offset + 3]!];
}

/** How many pixels of the plot area are exactly `color`. */
function countInPlotArea(image: DecodedPng, color: Rgba): number {
  let count = 0;
  for (let y = PLOT_AREA.top; y < PLOT_AREA.bottom; y += 1) {
    for (let x = PLOT_AREA.left; x < PLOT_AREA.right; x += 1) if (pixelAt(image, x, y).every((channel, index) => channel === color[index])) count += 1;
  }
  return count;
}

/** How many pixels of the plot area's column `x` are still the background. */
function backgroundInColumn(image: DecodedPng, x: number): number {
  let count = 0;
  for (let y = PLOT_AREA.top; y < PLOT_AREA.bottom; y += 1) if (pixelAt(image, x, y).every((channel, index) => channel === BACKGROUND[index])) count += 1;
  return count;
}

describe("png", () => {
  it("encodes a raster that decodes back to the same pixels", () => {
    const raster = new Raster(37, 21);
    raster.fill(hexColor("#ffffff"));
    raster.rect(2, 2, 10, 8, hexColor("#ff0000", 0.5));
    raster.line(0, 20, 36, 0, hexColor("#0000ff"));
    raster.dot(30, 15, 3, hexColor("#00ff00"));
    raster.text(1, 12, "Ag:5", hexColor("#000000"));
    const image = decodeOwnPng(encodePng(raster));
    expect([image.width, image.height]).toEqual([37, 21]);
    expect(image.pixels).toEqual(raster.pixels);
  });

  it("blends a translucent colour over what is there, and clips what falls outside", () => {
    const raster = new Raster(4, 4);
    raster.fill(hexColor("#ffffff"));
    raster.rect(-10, -10, 12, 12, hexColor("#ff0000", 0.5));
    raster.line(-5, 3, 10, 3, hexColor("#000000"));
    expect(raster.pixel(1, 1)).toEqual([255, 127, 127, 255]);
    expect(raster.pixel(2, 2)).toEqual([255, 255, 255, 255]);
    expect(raster.pixel(3, 3)).toEqual([0, 0, 0, 255]);
  });

  it("draws text inside the box textWidth gives it", () => {
    const raster = new Raster(40, 9);
    raster.text(1, 1, "n12 ?", hexColor("#000000"));
    const inked = [];
    for (let x = 0; x < 40; x += 1) for (let y = 0; y < 9; y += 1) if (raster.pixel(x, y)[3] > 0) inked.push(x);
    expect(Math.min(...inked)).toBe(1);
    expect(Math.max(...inked)).toBe(textWidth("n12 ?"));
    expect(() => new Raster(0, 3)).toThrow(/positive whole size/);
  });
});

describe("scales", () => {
  it("picks 1, 2 or 5 times a power of ten", () => {
    expect(niceStep(60, 13)).toBe(5);
    expect(niceStep(0.9, 4)).toBe(0.5);
    expect(niceStep(730, 5)).toBe(200);
  });

  it("covers whole decades on a log scale and rounds a linear one up to a tick", () => {
    const log = logScale({ min: 0.5, max: 300, from: 100, to: 0 });
    expect(log.ticks.map((tick) => tick.label)).toEqual(["0.1", "1", "10", "100", "1000"]);
    expect(log.pixel(0.001)).toBe(100);
    expect(log.pixel(1000)).toBe(0);
    const linear = linearScale({ max: 37, from: 0, to: 100, maxTicks: 5, roundUp: true });
    expect(linear.ticks.map((tick) => tick.label)).toEqual(["0", "10", "20", "30", "40"]);
    expect(timeScale(60_000).pixel(60_000)).toBe(PLOT_AREA.right - 1);
  });
});

describe("plots", () => {
  const record = syntheticRecord();
  const time = timeScale(record.durationMs);

  it("renders three PNGs of the plot size", () => {
    const plots = renderPlots(record);
    for (const png of Object.values(plots)) expect([decodeOwnPng(png).width, decodeOwnPng(png).height]).toEqual([PLOT_WIDTH, PLOT_HEIGHT]);
  });

  it("shades each fault window across the plot area and leaves the rest of the time clear", () => {
    const image = decodeOwnPng(latencyPlot({ ...record, operations: [] }));
    for (const fault of FAULTS) expect(backgroundInColumn(image, Math.round(time.pixel((fault.start + fault.end) / 2)))).toBe(0);
    expect(backgroundInColumn(image, Math.round(time.pixel(7_300)))).toBeGreaterThan(150);
    expect(pixelAt(image, Math.round(time.pixel(13_000)), 150)[0]).toBeGreaterThan(pixelAt(image, Math.round(time.pixel(13_000)), 150)[2]);
  });

  it("draws a dot per operation coloured by its outcome, and a cross for no answer", () => {
    const image = decodeOwnPng(latencyPlot(record));
    expect(countInPlotArea(image, OUTCOME_COLORS.ok)).toBeGreaterThan(300);
    expect(countInPlotArea(image, OUTCOME_COLORS.fail)).toBeGreaterThan(20);
    expect(countInPlotArea(image, OUTCOME_COLORS.unknown)).toBeGreaterThan(10);
  });

  it("draws one throughput line per workload", () => {
    const image = decodeOwnPng(throughputPlot(record));
    expect(countInPlotArea(image, seriesColor(0))).toBeGreaterThan(100);
    expect(countInPlotArea(image, seriesColor(1))).toBeGreaterThan(100);
  });

  it("draws each role a replica held", () => {
    const image = decodeOwnPng(rolePlot(record));
    for (const role of ["leader", "follower", "candidate", "rebuilding", "down", "paused"]) {
      expect(countInPlotArea(image, roleColor(role)), role).toBeGreaterThan(0);
    }
    expect(countInPlotArea(image, roleColor("down"))).toBeGreaterThan(countInPlotArea(image, roleColor("candidate")));
  });

  it("draws an empty run without failing", () => {
    const empty: RunRecord = { ...record, durationMs: 0, operations: [], faults: [], roles: [], checks: [] };
    for (const png of Object.values(renderPlots(empty))) expect(decodeOwnPng(png).width).toBe(PLOT_WIDTH);
  });
});

describe("report", () => {
  const record = syntheticRecord();

  it("summarizes the run in one line", () => {
    const line = summaryLine({ ...record, operations: record.operations.slice(0, 3), faults: [...FAULTS, FAULTS[0]!] });
    expect(line).toBe(
      "seed 42 · app-kv, 3 replicas · 60.0 s · 3 operations (3 ok, 0 fail, 0 unknown) · 4 faults (2 kill, 1 partition, 1 pause) · FAIL: linearizable",
    );
    expect(summaryLine({ ...record, checks: [] })).toMatch(/UNCHECKED/);
  });

  it("renders a page with the summary, the three plots embedded and every text escaped", () => {
    const html = renderReport(record, { plots: { type: "embedded", images: renderPlots(record) } });
    expect(html).toContain(`<p class="summary FAIL">${escapeHtml(summaryLine(record))}</p>`);
    expect(html).toContain("pnpm chaos --seed 42 --seconds 60");
    for (const id of ["latency", "throughput", "roles"]) {
      expect(html).toMatch(new RegExp(`<img id="${id}" src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"<]+"`));
    }
    expect(html.match(/<img /g)).toHaveLength(3);
    expect(html.match(/<script/gi)).toHaveLength(1);
    expect(html).toMatch(/<script>addEventListener\("load"[^<]*<\/script>\n<\/body>/);
    expect(html).toContain("<pre>read -&gt; &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot; &amp; more</pre>");
    expect(html).toContain("n1|n2,n3");
  });

  it("refers to the plots as files beside the page", () => {
    const html = renderReport(record, { plots: { type: "files" } });
    for (const id of ["latency", "throughput", "roles"]) expect(html).toContain(`<img id="${id}" src="${id}.png"`);
    expect(html).not.toContain("data:");
  });

  it("writes the page, the plots and the record to a directory", async () => {
    const directory = await mkdtemp(join(tmpdir(), "synod-report-"));
    try {
      const written = await writeReport(record, join(directory, "seed-42"));
      expect(written.html).toBe(join(directory, "seed-42", "report.html"));
      expect(written.pngs.map((path) => path.slice(path.lastIndexOf("/") + 1))).toEqual(["latency.png", "throughput.png", "roles.png"]);
      expect((await readdir(join(directory, "seed-42"))).sort()).toEqual(["latency.png", "report.html", "roles.png", "run.json", "throughput.png"]);
      for (const path of written.pngs) expect(decodeOwnPng(await readFile(path)).height).toBe(PLOT_HEIGHT);
      expect(JSON.parse(await readFile(join(directory, "seed-42", "run.json"), "utf8"))).toEqual(record);
      expect(await readFile(written.html, "utf8")).toContain('src="roles.png"');
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe("campaign summary", () => {
  it("adds up runs, faults by kind and operations per workload, and counts the failed runs", () => {
    const record: RunRecord = { ...syntheticRecord(), checks: [{ name: "y", passed: true, detail: "" }] };
    const failing: RunRecord = { ...record, seed: 2, faults: [...record.faults, { kind: "wipe", target: "n2 (disk spared: another replica is rebuilding)", start: 50_000, end: 51_000 }], checks: [{ name: "x", passed: false, detail: "" }] };
    const summary = campaignSummary([record, failing]);
    const kills = 2 * FAULTS.filter((fault) => fault.kind === "kill").length;
    expect(summary).toContain("2 runs");
    expect(summary).toContain("1 passed, 1 failed");
    expect(summary).toContain(`faults: ${2 * FAULTS.length + 1} (`);
    expect(summary).toContain(`${kills} kill`);
    expect(summary).toContain("1 of them struck with every disk spared");
    expect(summary).toContain(`operations: ${2 * record.operations.length}`);
  });
});
