/** Tests of `synod-lincheck`: in-process for the argument handling, and once as a real process per verdict. */

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runLincheckCli } from "../src/lincheck/cli.js";

const TESTKIT_DIRECTORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLI_PATH = path.join(TESTKIT_DIRECTORY, "src/bin/lincheck.ts");

const directory = mkdtempSync(path.join(tmpdir(), "lincheck-cli-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));
function historyFile(name: string, events: string[]): string {
  const file = path.join(directory, name);
  writeFileSync(file, events.map((event) => `INFO  jepsen.util - ${event.replaceAll("|", "\t")}\n`).join(""));
  return file;
}
const linearizableFile = historyFile("ok.log", ["0|:invoke|:write|1", "0|:ok|:write|1", "1|:invoke|:read|nil", "1|:ok|:read|1"]);
const staleReadFile = historyFile("stale.log", ["0|:invoke|:write|1", "0|:ok|:write|1", "1|:invoke|:read|nil", "1|:ok|:read|nil"]);
const malformedFile = historyFile("bad.log", ["0|:invoke|:write|1", "0|:ok|:write"]);

/** Runs the CLI in-process, capturing its output. */
function runInProcess(args: string[]) {
  const out: string[] = [];
  const error: string[] = [];
  const status = runLincheckCli(args, {
    writeOut: (line) => out.push(line),
    writeError: (line) => error.push(line),
    readTextFile: (file) => readFileSync(file, "utf8"),
  });
  return { status, out: out.join("\n"), error: error.join("\n") };
}

/** Runs the real executable through tsx. */
function runProcess(args: string[]) {
  const child = spawnSync(process.execPath, ["--import", "tsx", "--conditions=@synod/source", CLI_PATH, ...args], {
    cwd: TESTKIT_DIRECTORY,
    encoding: "utf8",
    timeout: 30_000,
  });
  return { status: child.status, out: child.stdout.trim(), error: child.stderr.trim() };
}

describe("synod-lincheck in process", () => {
  it("prints one verdict per file, with the file name when several", () => {
    const result = runInProcess(["--model", "cas-register", linearizableFile, staleReadFile]);
    expect(result.out).toBe(`${linearizableFile}: linearizable\n${staleReadFile}: not linearizable`);
    expect(result.status).toBe(1);
  });

  it("explains a failure on request", () => {
    const result = runInProcess(["--model=cas-register", "--explain", staleReadFile]);
    expect(result.out).toMatch(/^not linearizable\nnot linearizable: partition 0/);
    expect(result.out).toMatch(/longest linearizable prefix \(1 operations\)/);
  });

  it.each([
    [[], /missing --model/],
    [["--model", "queue", "x"], /unknown model "queue"/],
    [["--model", "kv"], /no history FILE/],
    [["--model", "kv", "--budget-ms", "soon", "x"], /--budget-ms needs a positive number/],
    [["--model", "kv", "--verbose", "x"], /unknown option --verbose/],
  ])("rejects bad usage %j with status 64", (args, message) => {
    const result = runInProcess(args);
    expect(result.status).toBe(64);
    expect(result.error).toMatch(message);
    expect(result.error).toMatch(/usage: synod-lincheck/);
  });

  it("reports an unparsable file with its line and status 65", () => {
    const result = runInProcess(["--model", "cas-register", malformedFile]);
    expect(result.status).toBe(65);
    expect(result.error).toContain(`${malformedFile}:2: missing value`);
  });

  it("reports an unreadable file with status 66", () => {
    const result = runInProcess(["--model", "kv", path.join(directory, "absent.txt")]);
    expect(result.status).toBe(66);
    expect(result.error).toMatch(/cannot read/);
  });

  it("prints the usage on --help", () => {
    const result = runInProcess(["--help"]);
    expect(result.status).toBe(0);
    expect(result.out).toMatch(/^usage: synod-lincheck/);
  });
});

describe("synod-lincheck executable", () => {
  it("exits 0 and prints linearizable", () => {
    expect(runProcess(["--model", "cas-register", linearizableFile])).toMatchObject({ status: 0, out: "linearizable" });
  }, 30_000);

  it("exits 1 and prints not linearizable", () => {
    expect(runProcess(["--model", "cas-register", staleReadFile])).toMatchObject({ status: 1, out: "not linearizable" });
  }, 30_000);

  it("exits 2 and prints unknown when the budget runs out", () => {
    expect(runProcess(["--model", "cas-register", "--budget-steps", "1", linearizableFile])).toMatchObject({ status: 2, out: "unknown" });
  }, 30_000);

  it("exits 65 on an unparsable file", () => {
    const result = runProcess(["--model", "cas-register", malformedFile]);
    expect(result.status).toBe(65);
    expect(result.error).toMatch(/:2: missing value/);
  }, 30_000);
});
