import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const buildDirectory = join(here, ".build");

/** Bundles a fixture once per run, so each process starts with plain `node` (tens of ms, not a TypeScript loader's hundreds). */
export async function bundleFixture(name: string): Promise<string> {
  mkdirSync(buildDirectory, { recursive: true });
  const outfile = join(buildDirectory, `${name}.mjs`);
  await build({
    entryPoints: [join(here, "fixtures", `${name}.ts`)],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    conditions: ["@synod/source"],
    // The native checksum module stays external (a .node file); optional native helpers of ws are absent.
    external: ["@node-rs/crc32", "bufferutil", "utf-8-validate"],
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    logLevel: "error",
  });
  return outfile;
}

/** A free TCP port on loopback (the OS picks it; the tiny race until the process binds is acceptable in tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A replica process this test started (and only these are ever signalled). */
export interface ReplicaProcess {
  readonly id: string;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything the process wrote to stderr (structured logs). */
  readonly logs: string[];
}

export function startReplica(script: string, id: string, config: unknown, readyTimeoutMs = 20_000): Promise<ReplicaProcess> {
  const child = spawn(process.execPath, [script, JSON.stringify(config)], { stdio: ["ignore", "pipe", "pipe"] });
  const logs: string[] = [];
  child.stderr?.on("data", (chunk: Buffer) => logs.push(chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`replica ${id} not ready in ${readyTimeoutMs} ms:\n${logs.join("")}`)), readyTimeoutMs);
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("ready ")) {
        clearTimeout(timer);
        resolve({ id, child, exited, logs });
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`replica ${id} exited (${code ?? signal}) before it was ready:\n${logs.join("")}`));
    });
  });
}
