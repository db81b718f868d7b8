/**
 * Three real `synod-kv serve` processes under a seeded nemesis (SIGKILL and
 * restart, SIGSTOP and SIGCONT, of the leader, of followers, and of the
 * leader and a follower together), while concurrent clients run puts,
 * deletes, compare-and-sets and reads on a few keys. Every client's history
 * is recorded with a monotonic clock and checked linearizable, key by key;
 * serializable reads, which are not linearizable, are only checked never to
 * go back before what their client has seen; after healing, the replicas
 * must converge.
 *
 * SYNOD_KV_FAULT_SEED=N replays the fault schedule (and each worker's choice
 * of operations); SYNOD_KV_FAULT_SECONDS sets the load time (default 20);
 * SYNOD_KV_FAULT_HISTORY=path writes the recorded history as JSON, to check
 * it again offline (`readHistory`, `checkKeyHistories`).
 */
import { SeededRandom } from "@synod/core";
import { ClientError } from "@synod/transport-ws";
import { expect, it } from "vitest";
import { type KvClient, KvOperationError } from "../src/index.js";
import { KvCluster } from "./cluster.js";
import {
  type KeyedOperation,
  Nemesis,
  briefReport,
  type RegisterInput,
  type RegisterOutput,
  checkKeyHistories,
  describeFault,
  planFaults,
  saveEvidence,
  writeHistory,
} from "./fault-helpers.js";

const SEED = Number(process.env.SYNOD_KV_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));
const LOAD_MS = Number(process.env.SYNOD_KV_FAULT_SECONDS ?? 20) * 1_000;
if (!Number.isSafeInteger(SEED) || SEED < 0) throw new Error(`SYNOD_KV_FAULT_SEED must be a non-negative integer, not ${process.env.SYNOD_KV_FAULT_SEED}`);
if (!(LOAD_MS > 0)) throw new Error(`SYNOD_KV_FAULT_SECONDS must be a positive number, not ${process.env.SYNOD_KV_FAULT_SECONDS}`);
const WORKERS = 8;
const KEYS = ["k0", "k1", "k2", "k3", "k4"];
/**
 * Short attempts, and for half the workers an overall deadline shorter than
 * the longer faults (two replicas paused together; a failover alone takes
 * about 0.5 s), so that operations end with unknown outcomes
 * (`UNKNOWN_OUTCOME`) that the history must then carry.
 */
const CLIENT_OPTIONS = [
  { requestTimeoutMs: 500, operationTimeoutMs: 5_000 },
  { requestTimeoutMs: 500, operationTimeoutMs: 1_000 },
] as const;
/** A hang guard per worker; the load time ends the loop long before. */
const OPERATIONS_PER_WORKER_MAX = 20_000;
const OK_OPERATIONS_MIN = 200;
const CHECK_BUDGET_MS = 15_000;
const CONVERGE_TIMEOUT_MS = 15_000;

/** How each worker's operations ended. */
interface Tally {
  ok: number;
  /** The store refused the operation (`KvOperationError`): it did not take effect. */
  failed: number;
  /** No answer: a write stays in the history open-ended (it may yet take effect); a read is dropped. */
  unknownWrites: number;
  unknownReads: number;
}

/** Everything the workers record. */
interface Recording {
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
async function runWorker(worker: number, client: KvClient, random: SeededRandom, recording: Recording, running: () => boolean): Promise<void> {
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

/** Each replica's revision and contents, read locally from that replica alone. */
async function replicaViews(cluster: KvCluster, clients: readonly KvClient[]): Promise<string[]> {
  return Promise.all(
    clients.map(async (client, index) => {
      try {
        const [status, range] = await Promise.all([client.status(), client.range({ prefix: "k" }, { serializable: true })]);
        const contents = range.kvs.map((kv) => `${kv.key}=${kv.value}@${kv.modRevision}`).join(",");
        return `${cluster.replicas[index]?.id}: revision ${status.revision} {${contents}}`;
      } catch (error) {
        return `${cluster.replicas[index]?.id}: ${(error as Error).message}`;
      }
    }),
  );
}

it("replica processes under SIGKILL and SIGSTOP of leader and followers keep every client history linearizable, and converge after healing", async () => {
  const random = new SeededRandom(SEED);
  const plan = planFaults(random.fork(), LOAD_MS);
  const workerRandoms = Array.from({ length: WORKERS }, () => random.fork());
  console.log(`fault test seed ${SEED} (replay: SYNOD_KV_FAULT_SEED=${SEED}), load ${LOAD_MS} ms, faults:\n  ${plan.map(describeFault).join("\n  ")}`);

  const startedAt = performance.now();
  const recording: Recording = { history: [], tally: { ok: 0, failed: 0, unknownWrites: 0, unknownReads: 0 }, regressions: [], serializableReads: 0 };
  const cluster = await KvCluster.start();
  const nemesis = new Nemesis(cluster);
  const clients: KvClient[] = [];
  let running = true;
  let workers: Promise<void>[] = [];
  let faults: Promise<void> = Promise.resolve();
  try {
    for (let worker = 0; worker < WORKERS; worker += 1) clients.push(cluster.client(CLIENT_OPTIONS[worker % CLIENT_OPTIONS.length]));
    const loadStartedAt = performance.now();
    workers = clients.map((client, worker) => runWorker(worker, client, workerRandoms[worker] as SeededRandom, recording, () => running));
    faults = nemesis.run(plan);
    const loadTimer = new Promise<void>((resolve) => setTimeout(resolve, LOAD_MS));
    // The load lasts LOAD_MS, or until the last fault has healed if that is later.
    await Promise.all([faults, loadTimer]);
    const loadMs = performance.now() - loadStartedAt;

    // Heal, stop the load, and wait for a leader.
    await nemesis.heal();
    running = false;
    await Promise.all(workers);
    const leader = await cluster.waitForLeader(15_000);

    // A final linearizable read of every key joins the history: nothing acknowledged may be lost.
    const reader = cluster.client({ requestTimeoutMs: 1_000, operationTimeoutMs: 10_000 });
    clients.push(reader);
    for (const key of KEYS) {
      const call = performance.now();
      const value = (await reader.get(key))?.value ?? null;
      recording.history.push({ key, operation: { clientId: "final", input: { kind: "read" }, output: { kind: "read", value }, call, return: performance.now() } });
    }

    // Every replica, read alone and locally, reaches the same revision and contents.
    const local = cluster.urls.map((url) => cluster.client({ urls: [url], requestTimeoutMs: 500, operationTimeoutMs: 2_000 }));
    clients.push(...local);
    const convergeDeadline = performance.now() + CONVERGE_TIMEOUT_MS;
    let views = await replicaViews(cluster, local);
    while (new Set(views.map((view) => view.slice(view.indexOf(":")))).size !== 1 && performance.now() < convergeDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      views = await replicaViews(cluster, local);
    }

    const checkStartedAt = performance.now();
    const verdicts = checkKeyHistories(recording.history, CHECK_BUDGET_MS);
    const checkMs = performance.now() - checkStartedAt;
    const failing = verdicts.filter((verdict) => verdict.verdict !== "linearizable");
    const converged = new Set(views.map((view) => view.slice(view.indexOf(":")))).size === 1;
    const header = { seed: SEED, plan, faults: nemesis.log };
    if (process.env.SYNOD_KV_FAULT_HISTORY !== undefined) writeHistory(process.env.SYNOD_KV_FAULT_HISTORY, header, recording.history);
    // On a failure, the history and every replica's logs outlive the cluster's directory.
    const evidence =
      failing.length > 0 || recording.regressions.length > 0 || !converged ? `evidence in ${saveEvidence(cluster, header, recording.history, verdicts)}` : "";

    const { tally } = recording;
    const latenciesMs = recording.history.map(({ operation }) => operation.return - operation.call).filter(Number.isFinite);
    const summary = [
      `seed ${SEED}: ${(loadMs / 1_000).toFixed(1)} s of load, ${((performance.now() - startedAt) / 1_000).toFixed(1)} s in all, check ${checkMs.toFixed(0)} ms`,
      `operations: ${tally.ok} ok, ${tally.failed} failed, ${tally.unknownWrites} writes and ${tally.unknownReads} reads unknown; ${recording.serializableReads} serializable reads; slowest ${Math.max(0, ...latenciesMs).toFixed(0)} ms`,
      `faults struck: ${[...nemesis.struck].map(([what, count]) => `${what} ×${count}`).join(", ")}; leader after healing ${leader}`,
      `per key: ${verdicts.map((verdict) => `${verdict.key} ${verdict.operations} ops ${verdict.verdict}`).join("; ")}`,
      `replicas: ${views.join(" | ")}`,
      `fault log:\n  ${nemesis.log.join("\n  ")}`,
      evidence,
    ].join("\n");
    console.log(summary);

    expect(failing.map((verdict) => `${verdict.key}: ${briefReport(verdict.report)}`).join("\n\n"), `replay with SYNOD_KV_FAULT_SEED=${SEED}\n${summary}`).toBe("");
    expect(recording.regressions, `replay with SYNOD_KV_FAULT_SEED=${SEED}: serializable reads went back in time\n${summary}`).toEqual([]);
    expect(tally.ok, `replay with SYNOD_KV_FAULT_SEED=${SEED}: too little progress\n${summary}`).toBeGreaterThan(OK_OPERATIONS_MIN);
    expect(converged, `replay with SYNOD_KV_FAULT_SEED=${SEED}: replicas did not converge\n${summary}`).toBe(true);
    // The schedule always holds these four; the leader is whoever leads when each starts.
    expect(nemesis.struck.get("kill leader") ?? 0, "a leader was killed").toBeGreaterThan(0);
    expect(nemesis.struck.get("pause leader") ?? 0, "a leader was paused").toBeGreaterThan(0);
    expect(nemesis.struck.get("kill follower") ?? 0, "a follower was killed").toBeGreaterThan(0);
    expect(nemesis.struck.get("pause-two leader") ?? 0, "a leader and a follower were paused together").toBeGreaterThan(0);
  } finally {
    running = false;
    nemesis.stop();
    // The fault in progress ends (a restart included) before the cluster is closed, so no process outlives it.
    await faults.catch(() => undefined);
    await Promise.all(workers).catch(() => undefined);
    await Promise.all(clients.map((client) => client.close()));
    await cluster.close();
  }
}, 120_000);
