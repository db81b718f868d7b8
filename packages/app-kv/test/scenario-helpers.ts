/**
 * Helpers for the scenario tests (`scenarios.test.ts`): bounded waits, a
 * watch recorder, the CLI and fixture processes. Every wait has a deadline
 * and every failure says what was awaited, so a hang reads as a message, not
 * as vitest's timeout.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleScript, sleep, until } from "@synod/testkit/processes";
import type { KvEvent, KvWatch, WatchBatch } from "../src/index.js";
import { bundleCli, type KvCluster, type Replica } from "./cluster.js";

const here = dirname(fileURLToPath(import.meta.url));

export { sleep, until };

/** The live replicas, split into the one every live replica agrees leads and the rest. */
export async function roles(cluster: KvCluster): Promise<{ leader: Replica; followers: Replica[] }> {
  const leaderId = await cluster.waitForLeader();
  return {
    leader: cluster.replica(leaderId),
    followers: cluster.replicas.filter((replica) => replica.id !== leaderId && replica.child !== undefined),
  };
}

/**
 * Drains a watch in the background, keeping every batch (progress batches
 * included) and the error that ended it, if any.
 */
export class WatchRecorder {
  readonly batches: WatchBatch[] = [];
  error: unknown;
  ended = false;
  readonly finished: Promise<void>;

  constructor(private readonly watch: KvWatch) {
    this.finished = (async () => {
      try {
        for await (const batch of watch) this.batches.push(batch);
      } catch (error) {
        this.error = error;
      } finally {
        this.ended = true;
      }
    })();
  }

  /** Every event received, in arrival order. */
  get events(): KvEvent[] {
    return this.batches.flatMap((batch) => batch.events);
  }

  /** The batches that carry events (not the progress ones). */
  get changes(): WatchBatch[] {
    return this.batches.filter((batch) => batch.events.length > 0);
  }

  /** Waits until `check(this)` holds; fails at once if the watch ended. */
  async waitFor(check: (recorder: WatchRecorder) => boolean, timeoutMs: number, what: string): Promise<void> {
    await until(
      () => {
        if (check(this)) return true;
        if (this.ended) throw new Error(`the watch ended (${String(this.error)}) after ${this.events.length} events`);
        return false;
      },
      timeoutMs,
      `${what} (received ${this.events.length} events in ${this.batches.length} batches)`,
    );
  }

  close(): void {
    this.watch.close();
  }
}

export interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the bundled `synod-kv` CLI with `args`, killing it after `timeoutMs`. */
export async function runCli(args: readonly string[], options: { timeoutMs?: number; stdin?: string } = {}): Promise<ProcessResult> {
  const script = await bundleCli();
  const child = spawn(process.execPath, [script, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdin.end(options.stdin ?? "");
  const timeoutMs = options.timeoutMs ?? 15_000;
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once("close", (exitCode) => resolve(exitCode)));
  clearTimeout(timer);
  if (code === null) throw new Error(`synod-kv ${args.join(" ")} was killed after ${timeoutMs} ms:\n${stdout}\n${stderr}`);
  return { code, stdout, stderr };
}

const fixtures = new Map<string, Promise<string>>();

/** Bundles `test/fixtures/<name>.ts` once per run (as `bundleCli` does the CLI), so a fixture process starts in tens of ms. */
export function bundleFixture(name: string): Promise<string> {
  let bundled = fixtures.get(name);
  if (bundled === undefined) {
    bundled = bundleScript(join(here, "fixtures", `${name}.ts`), join(here, ".build", `${name}.mjs`));
    fixtures.set(name, bundled);
  }
  return bundled;
}

/** A fixture process: its output so far, and a wait for a line of it. */
export interface FixtureProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
  /** Waits for a stdout line that starts with `prefix`; returns that line. */
  line(prefix: string, timeoutMs: number): Promise<string>;
  /** SIGKILLs it (by its PID) and waits until it is gone. */
  kill(): Promise<void>;
}

export async function spawnFixture(name: string, args: readonly string[]): Promise<FixtureProcess> {
  const script = await bundleFixture(name);
  const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  return {
    child,
    exited,
    output: () => `${stdout}${stderr}`,
    async line(prefix, timeoutMs) {
      let found: string | undefined;
      await until(
        () => {
          found = stdout.split("\n").find((line) => line.startsWith(prefix));
          if (found !== undefined) return true;
          if (gone) throw new Error(`${name} exited:\n${stdout}\n${stderr}`);
          return false;
        },
        timeoutMs,
        `${name} to print "${prefix}"`,
      );
      return found as string;
    },
    async kill() {
      if (!gone && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
      await exited;
    },
  };
}
