/**
 * The report as a browser shows it: the page is written to a directory, opened
 * in headless chromium, and the test looks at what chromium rendered, not at
 * the HTML it was given: the page's script counts the plots the browser
 * decoded, and a screenshot has each plot in it, pixel for pixel.
 *
 * Chromium is `CHROME_PATH`, else `chromium` or `chromium-browser` on PATH;
 * `bash scripts/setup.sh` installs Debian's. Without one the test fails,
 * unless `SYNOD_SKIP_BROWSER=1`.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PLOT_ALT, escapeHtml } from "../src/report/html.js";
import { PLOT_NAMES, plotFileName, renderPlots } from "../src/report/plots.js";
import { writeReport, type WrittenReport } from "../src/report/write.js";
import { syntheticRecord } from "./fixtures.js";
import { type DecodedPng, decodePng } from "./png-decode.js";

/** How long one chromium run may take before it is killed. */
const CHROMIUM_TIMEOUT_MS = 60_000;
const SCREEN = { width: 1280, height: 2000 } as const;

/** `CHROME_PATH` if set, else the first `chromium` or `chromium-browser` on PATH. */
function findChromium(): string | undefined {
  const configured = process.env.CHROME_PATH;
  if (configured) return configured;
  for (const name of ["chromium", "chromium-browser"]) {
    for (const directory of (process.env.PATH ?? "").split(delimiter)) {
      if (directory === "") continue;
      const path = join(directory, name);
      try {
        accessSync(path, constants.X_OK);
        if (statSync(path).isFile()) return path;
      } catch {
        // Not here.
      }
    }
  }
  return undefined;
}

/**
 * Runs headless chromium with `args` and a profile in `profile`, and resolves
 * to what it wrote on stdout. Chromium leads a process group of its own, so
 * that one that overruns is killed with all its helpers.
 */
function runChromium(chromium: string, profile: string, args: readonly string[]): Promise<string> {
  const argv = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", `--user-data-dir=${profile}`, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(chromium, argv, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    const stdout: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-4000);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // It has just ended.
        }
      }
    }, CHROMIUM_TIMEOUT_MS);
    const command = `${chromium} ${argv.join(" ")}`;
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${command}: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`${command} did not finish in ${CHROMIUM_TIMEOUT_MS / 1000} s and was killed; its stderr ended:\n${stderr}`));
      else if (code !== 0) reject(new Error(`${command} exited with ${code ?? signal}; its stderr ended:\n${stderr}`));
      else resolve(Buffer.concat(stdout).toString("utf8"));
    });
  });
}

function sameColor(first: DecodedPng, firstOffset: number, second: DecodedPng, secondOffset: number): boolean {
  return (
    first.pixels[firstOffset] === second.pixels[secondOffset] &&
    first.pixels[firstOffset + 1] === second.pixels[secondOffset + 1] &&
    first.pixels[firstOffset + 2] === second.pixels[secondOffset + 2]
  );
}

/** Where `needle` appears, every pixel's colour the same, in `haystack`; undefined if nowhere. */
function findDecodedPng(haystack: DecodedPng, needle: DecodedPng): { x: number; y: number } | undefined {
  // Anchor on the first pixel unlike the top-left one, so that the page's plain background does not match everywhere.
  let anchor = 0;
  while (anchor < needle.width * needle.height && sameColor(needle, anchor * 4, needle, 0)) anchor += 1;
  const anchorX = anchor % needle.width;
  const anchorY = Math.floor(anchor / needle.width);
  for (let y = anchorY; y <= haystack.height - needle.height + anchorY; y += 1) {
    for (let x = anchorX; x <= haystack.width - needle.width + anchorX; x += 1) {
      if (!sameColor(haystack, (y * haystack.width + x) * 4, needle, anchor * 4)) continue;
      const left = x - anchorX;
      const top = y - anchorY;
      let matches = true;
      for (let row = 0; row < needle.height && matches; row += 1) {
        for (let column = 0; column < needle.width && matches; column += 1) {
          matches = sameColor(haystack, ((top + row) * haystack.width + left + column) * 4, needle, (row * needle.width + column) * 4);
        }
      }
      if (matches) return { x: left, y: top };
    }
  }
  return undefined;
}

describe.skipIf(process.env.SYNOD_SKIP_BROWSER === "1")("report in a browser", () => {
  const record = syntheticRecord();
  let chromium: string;
  let directory: string;
  let written: WrittenReport;

  beforeAll(async () => {
    const found = findChromium();
    if (found === undefined) {
      throw new Error(
        "No chromium to render the report in: CHROME_PATH is unset and neither chromium nor chromium-browser is on PATH. " +
          "Run `bash scripts/setup.sh` to install Debian's chromium (or set CHROME_PATH to a Chromium or Chrome binary); " +
          "SYNOD_SKIP_BROWSER=1 skips this test.",
      );
    }
    chromium = found;
    directory = await mkdtemp(join(tmpdir(), "synod-report-browser-"));
    written = await writeReport(record, join(directory, "report"));
  });

  afterAll(async () => {
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  });

  it("loads and decodes every plot", { timeout: CHROMIUM_TIMEOUT_MS + 30_000 }, async () => {
    const dom = await runChromium(chromium, await mkdtemp(join(directory, "profile-")), [
      "--virtual-time-budget=5000",
      "--dump-dom",
      pathToFileURL(written.html).href,
    ]);
    // Set by the page's script once the page has loaded, so only a page that ran has it.
    expect(dom.match(/<body\b[^>]*\sdata-plots-loaded="(\d+)"/)?.[1], "plots the browser decoded").toBe(String(PLOT_NAMES.length));
    expect(dom.match(/<img\b/g)).toHaveLength(PLOT_NAMES.length);
    for (const name of PLOT_NAMES) {
      expect(dom).toContain(`<img id="${name}" src="${plotFileName(name)}" alt="${escapeHtml(PLOT_ALT[name])}"`);
    }
  });

  it("shows every plot on the screen, pixel for pixel", { timeout: CHROMIUM_TIMEOUT_MS + 30_000 }, async () => {
    const screenshot = join(directory, "screenshot.png");
    await runChromium(chromium, await mkdtemp(join(directory, "profile-")), [
      "--hide-scrollbars",
      `--window-size=${SCREEN.width},${SCREEN.height}`,
      "--virtual-time-budget=5000",
      `--screenshot=${screenshot}`,
      pathToFileURL(written.html).href,
    ]);
    const screen = decodePng(await readFile(screenshot));
    expect([screen.width, screen.height]).toEqual([SCREEN.width, SCREEN.height]);
    const plots = renderPlots(record);
    const places = PLOT_NAMES.map((name) => ({ name, place: findDecodedPng(screen, decodePng(plots[name])) }));
    for (const { name, place } of places) expect(place, `${name} plot in the screenshot`).toBeDefined();
    // One under another, in the page's order.
    const tops = places.map(({ place }) => place?.y ?? -1);
    expect(tops).toEqual([...tops].sort((a, b) => a - b));
    expect(new Set(tops).size).toBe(PLOT_NAMES.length);
  });
});
