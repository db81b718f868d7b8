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
import { expect, it } from "vitest";
import type { KvClient } from "../src/index.js";
import { KvCluster } from "./cluster.js";
import {
  Nemesis,
  briefReport,
  checkKeyHistories,
  describeFault,
  planFaults,
  saveEvidence,
  writeHistory,
} from "./fault-helpers.js";
import { newRecording, recordFinalReads, runWorker } from "./workload.js";

const SEED = Number(process.env.SYNOD_KV_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));
const LOAD_MS = Number(process.env.SYNOD_KV_FAULT_SECONDS ?? 20) * 1_000;
if (!Number.isSafeInteger(SEED) || SEED < 0) throw new Error(`SYNOD_KV_FAULT_SEED must be a non-negative integer, not ${process.env.SYNOD_KV_FAULT_SEED}`);
if (!(LOAD_MS > 0)) throw new Error(`SYNOD_KV_FAULT_SECONDS must be a positive number, not ${process.env.SYNOD_KV_FAULT_SECONDS}`);
const WORKERS = 8;
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
const OK_OPERATIONS_MIN = 200;
const CHECK_BUDGET_MS = 15_000;
const CONVERGE_TIMEOUT_MS = 15_000;

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
  const recording = newRecording();
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

    const reader = cluster.client({ requestTimeoutMs: 1_000, operationTimeoutMs: 10_000 });
    clients.push(reader);
    await recordFinalReads(reader, recording);

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
