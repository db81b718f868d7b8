/**
 * Helpers for the scenario tests (`scenarios.test.ts`): bounded waits, a
 * watch recorder, the CLI and fixture processes. Every wait has a deadline
 * and every failure says what was awaited, so a hang reads as a message, not
 * as vitest's timeout.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ScriptProcess, type ScriptResult, bundleScript, runScript, sleep, spawnScript, until } from "@synod/testkit/processes";
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

export type ProcessResult = ScriptResult;
export type FixtureProcess = ScriptProcess;

/** Runs the CLI as a user would, to its end. */
export async function runCli(args: readonly string[], options: { timeoutMs?: number; stdin?: string } = {}): Promise<ProcessResult> {
  return runScript(await bundleCli(), args, options);
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

export async function spawnFixture(name: string, args: readonly string[]): Promise<FixtureProcess> {
  return spawnScript(name, await bundleFixture(name), args);
}
