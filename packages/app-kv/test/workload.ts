import type { SeededRandom } from "@synod/core";
import { ClientError } from "@synod/transport-ws";
import { type KvClient, KvOperationError } from "../src/index.js";
import type { KeyedOperation, RegisterInput, RegisterOutput } from "./fault-helpers.js";

/**
 * The recorded client load of the real-process tests (faults, membership):
 * workers run random reads, writes, deletes and compare-and-sets on `KEYS`,
 * one at a time each, and record every call for the linearizability check.
 */

export const KEYS = ["k0", "k1", "k2", "k3", "k4"];
/** A hang guard per worker; the load time ends the loop long before. */
const OPERATIONS_PER_WORKER_MAX = 20_000;

export function newRecording(): Recording {
  return { history: [], tally: { ok: 0, failed: 0, unknownWrites: 0, unknownReads: 0 }, regressions: [], serializableReads: 0 };
}

/** How each worker's operations ended. */
export interface Tally {
  ok: number;
  /** The store refused the operation (`KvOperationError`): it did not take effect. */
  failed: number;
  /** No answer: a write stays in the history open-ended (it may yet take effect); a read is dropped. */
  unknownWrites: number;
  unknownReads: number;
}

/** Everything the workers record. */
export interface Recording {
  readonly history: KeyedOperation[];
  readonly tally: Tally;
  /** Serializable reads older than a revision their client had already seen. */
  readonly regressions: string[];
  serializableReads: number;
}

/** The outcome of one call: its response, or `undefined` when unknown; throws only for a refusal. */
async function attempt<T>(run: () => Promise<T>): Promise<{ value: T } | undefined> {
  try {
    return { value: await run() };
  } catch (error) {
    if (error instanceof KvOperationError) throw error;
    // UNKNOWN_OUTCOME after the deadline, or any other transport failure: maybe applied, maybe not.
    if (error instanceof ClientError) return undefined;
    throw error;
  }
}

/**
 * One logical client: a sequence of random operations on `KEYS`, one at a
 * time, until `running()` turns false. A compare-and-set expects what this
 * worker last saw of the key, so that it succeeds often enough to matter.
 */
export async function runWorker(worker: number, client: KvClient, random: SeededRandom, recording: Recording, running: () => boolean): Promise<void> {
  const known = new Map<string, string | null>();
  for (let index = 0; running() && index < OPERATIONS_PER_WORKER_MAX; index += 1) {
    const key = KEYS[random.integer(KEYS.length)] as string;
    const value = `w${worker}.${index}`;
    const roll = random.float();

    if (roll >= 0.9) {
      // A serializable read is not linearizable: it only has to be no older than what this client has seen.
      const floor = client.seenRevision;
      const read = await attempt(() => client.range(key, { serializable: true })).catch((error: unknown) => {
        if (error instanceof KvOperationError) return undefined;
        throw error;
      });
      if (read === undefined) continue;
      recording.serializableReads += 1;
      if (read.value.revision < floor) recording.regressions.push(`worker ${worker}: serializable read at revision ${read.value.revision} after seeing ${floor}`);
      continue;
    }

    let input: RegisterInput;
    let run: () => Promise<RegisterOutput>;
    if (roll < 0.35) {
      input = { kind: "read" };
      run = async () => ({ kind: "read", value: (await client.get(key))?.value ?? null });
    } else if (roll < 0.6) {
      input = { kind: "write", value };
      run = async () => (await client.put(key, value), { kind: "write" });
    } else if (roll < 0.65) {
      input = { kind: "write", value: null };
      run = async () => (await client.delete(key), { kind: "write" });
    } else {
      const from = known.get(key) ?? null;
      input = { kind: "cas", from, to: value };
      run = async () => {
        const result = await client.compareAndSet(key, from === null ? { version: 0 } : from, value);
        return result.succeeded ? { kind: "cas", succeeded: true } : { kind: "cas", succeeded: false, current: result.current?.value ?? null };
      };
    }

    const call = performance.now();
    let outcome: { value: RegisterOutput } | undefined;
    try {
      outcome = await attempt(run);
    } catch (error) {
      if (!(error instanceof KvOperationError)) throw error;
      recording.tally.failed += 1;
      continue;
    }
    const returned = performance.now();
    if (outcome === undefined) {
      if (input.kind === "read") {
        recording.tally.unknownReads += 1;
      } else {
        recording.tally.unknownWrites += 1;
        recording.history.push({ key, operation: { clientId: worker, input, output: undefined, call, return: Number.POSITIVE_INFINITY } });
      }
      continue;
    }
    recording.tally.ok += 1;
    recording.history.push({ key, operation: { clientId: worker, input, output: outcome.value, call, return: returned } });
    const output = outcome.value;
    // Workers only ever write strings (or delete: null).
    if (output.kind === "read") known.set(key, output.value as string | null);
    else if (input.kind === "write") known.set(key, input.value as string | null);
    else if (input.kind === "cas" && output.kind === "cas") known.set(key, (output.succeeded ? input.to : (output.current ?? null)) as string | null);
  }
}


/** A final linearizable read of every key joins the history: nothing acknowledged may be lost. */
export async function recordFinalReads(reader: KvClient, recording: Recording): Promise<void> {
  for (const key of KEYS) {
    const call = performance.now();
    const value = (await reader.get(key))?.value ?? null;
    recording.history.push({ key, operation: { clientId: "final", input: { kind: "read" }, output: { kind: "read", value }, call, return: performance.now() } });
  }
}
