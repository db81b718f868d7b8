import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleScript, freePort } from "@synod/testkit/processes";

const here = dirname(fileURLToPath(import.meta.url));
const buildDirectory = join(here, ".build");

/** Bundles a fixture once per run, so each process starts with plain `node`. */
export function bundleFixture(name: string): Promise<string> {
  return bundleScript(join(here, "fixtures", `${name}.ts`), join(buildDirectory, `${name}.mjs`));
}

export { freePort };

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
