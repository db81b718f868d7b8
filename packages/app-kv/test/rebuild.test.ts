/**
 * A lost disk on real processes (Paxos Made Live §5.1): while clients run
 * reads, writes, deletes and compare-and-sets, a follower is killed and its
 * data directory damaged (a bit flipped in the middle of its log, or the
 * whole directory wiped). Restarted, it finds the damage, moves the files
 * aside, rebuilds from the others as a non-voter and votes again on its own;
 * then the other follower is killed, and writes still commit (so the rebuilt
 * replica votes). No acknowledged write is lost, every key's history is
 * linearizable, and the replicas converge.
 *
 * SYNOD_KV_REBUILD_SEED=N replays the workers' choice of operations.
 */
import { existsSync, openSync, readSync, readdirSync, statSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { SeededRandom } from "@synod/core";
import { until } from "@synod/testkit/processes";
import { expect, it } from "vitest";
import type { KvClient } from "../src/index.js";
import { KvCluster, logLines, perTestCluster } from "./cluster.js";
import { briefReport, checkKeyHistories } from "./fault-helpers.js";
import { newRecording, recordFinalReads, runWorker } from "./workload.js";

const SEED = Number(process.env.SYNOD_KV_REBUILD_SEED ?? Math.floor(Math.random() * 2 ** 31));
const WORKERS = 4;
const REBUILT = "rebuilt: voting again";
const STORAGE_LOST = "storage lost: rebuilding from the other replicas, voting in nothing until then";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const context = perTestCluster();
const clients = context.clients;

/** Flips one bit in the middle of the replica's largest log segment; returns the file and offset. */
function flipBitInLog(directory: string): { file: string; offset: number } {
  const segments = readdirSync(directory)
    .filter((name) => /^wal-\d+\.log$/.test(name))
    .map((name) => ({ file: join(directory, name), size: statSync(join(directory, name)).size }))
    .sort((x, y) => y.size - x.size);
  const segment = segments[0];
  if (segment === undefined || segment.size < 1024) throw new Error(`no log segment worth damaging in ${directory}`);
  const offset = Math.floor(segment.size / 2);
  const fd = openSync(segment.file, "r+");
  try {
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, offset);
    byte[0] = (byte[0] as number) ^ 0x10;
    writeSync(fd, byte, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
  return { file: segment.file, offset };
}


for (const damage of ["a bit flipped in the middle of its log", "its data directory wiped"] as const) {
  it(`a follower with ${damage} under load rebuilds as a non-voter, votes again on its own, and nothing acknowledged is lost`, { timeout: 120_000 }, async () => {
    const random = new SeededRandom(SEED);
    console.log(`rebuild test (${damage}) seed ${SEED} (replay: SYNOD_KV_REBUILD_SEED=${SEED})`);
    const cluster = (context.cluster = await KvCluster.start());
    const recording = newRecording();
    let running = true;
    const workerClients = Array.from({ length: WORKERS }, () => cluster.client({ requestTimeoutMs: 500, operationTimeoutMs: 10_000 }) as KvClient);
    clients.push(...workerClients);
    const workers = workerClients.map((client, worker) => runWorker(worker, client, random.fork(), recording, () => running));
    try {
      await sleep(2_000);
      const leader = await cluster.waitForLeader();
      const victim = cluster.replicas.find((replica) => replica.id !== leader)?.id as string;
      await cluster.kill(victim);
      const directory = cluster.dataDirectory(victim);
      if (damage === "its data directory wiped") cluster.wipe(victim);
      else console.log(`flipped a bit in ${JSON.stringify(flipBitInLog(directory))}`);
      await sleep(1_000);

      // Restarted (as a member, `--rejoin`), it finds the damage on its own and rebuilds.
      await cluster.restart(victim);
      const replica = cluster.replica(victim);
      await until(() => logLines(replica, REBUILT).length > 0, 30_000, `${victim} to finish rebuilding`);
      const lost = logLines(replica, STORAGE_LOST)[0];
      expect(lost, "the replica says its storage was lost").toBeDefined();
      if (damage === "its data directory wiped") expect(String(lost?.reason)).toContain("empty");
      else {
        expect(String(lost?.file)).toMatch(/wal-\d+\.log$/);
        expect(readdirSync(directory).some((name) => name.startsWith("damaged-") && existsSync(join(directory, name, String(lost?.file).split("/").pop() as string)))).toBe(true);
      }
      const rebuiltAfter = logLines(replica, REBUILT)[0]?.ms;
      console.log(`${victim} rebuilt and voting again after ${String(rebuiltAfter)} ms`);
      await sleep(1_500);

      // It votes: with the other follower gone, the leader still commits with it.
      const currentLeader = await cluster.waitForLeader();
      const other = cluster.replicas.find((candidate) => candidate.id !== victim && candidate.id !== currentLeader)?.id as string;
      await cluster.kill(other);
      const probe = cluster.client({ requestTimeoutMs: 1_000, operationTimeoutMs: 15_000 });
      clients.push(probe);
      await probe.put("vote-check", "committed with the rebuilt replica");
      await cluster.restart(other);
    } finally {
      running = false;
      await Promise.all(workers);
    }

    const reader = cluster.client({ requestTimeoutMs: 1_000, operationTimeoutMs: 10_000 });
    clients.push(reader);
    await recordFinalReads(reader, recording);
    const verdicts = checkKeyHistories(recording.history, 15_000);
    console.log(`operations: ${recording.tally.ok} ok, ${recording.tally.unknownWrites} writes unknown; per key: ${verdicts.map((verdict) => `${verdict.key} ${verdict.operations} ${verdict.verdict}`).join("; ")}`);
    expect(verdicts.filter((verdict) => verdict.verdict !== "linearizable").map((verdict) => `${verdict.key}: ${briefReport(verdict.report)}`).join("\n"), `seed ${SEED}`).toBe("");
    expect(recording.tally.ok).toBeGreaterThan(100);

    // Every replica, read locally, converges on the same contents.
    const local = cluster.urls.map((url) => cluster.client({ urls: [url], requestTimeoutMs: 500, operationTimeoutMs: 2_000 }) as KvClient);
    clients.push(...local);
    const views = async () => Promise.all(local.map(async (client) => JSON.stringify((await client.range({ prefix: "" }, { serializable: true })).kvs.map((kv) => [kv.key, kv.value, kv.modRevision]))));
    await until(async () => new Set(await views()).size === 1, 15_000, "the replicas to converge");
  });
}
