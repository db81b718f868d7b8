/**
 * Membership changes on real `synod-kv serve` processes: the cluster grows
 * and shrinks under a recorded client load, and a replica whose disk was
 * wiped comes back through a snapshot. Changes go through the `synod-kv
 * members` CLI, as an operator would make them.
 */
import { SeededRandom } from "@synod/core";
import { runScript, sleep, until } from "@synod/testkit/processes";
import { expect, it } from "vitest";
import { KvCluster, type Replica, bundleCli, logLines, perTestCluster } from "./cluster.js";
import { briefReport, checkKeyHistories } from "./fault-helpers.js";
import { newRecording, recordFinalReads, runWorker } from "./workload.js";

const SEED = Number(process.env.SYNOD_KV_MEMBERSHIP_SEED ?? Math.floor(Math.random() * 2 ** 31));
const SNAPSHOT_FLAGS = ["--snapshot-every-slots", "100", "--snapshot-tail-slots", "20"];

const context = perTestCluster();
const clients = context.clients;

interface View {
  readonly config: { readonly id: number; readonly voters: readonly string[]; readonly learners: readonly string[] };
  readonly members: readonly { readonly id: string; readonly role: string; readonly leader: boolean }[];
}

/** `synod-kv members ARGS...` against the cluster; its JSON output. */
async function members(...args: string[]): Promise<unknown> {
  const result = await runScript(await bundleCli(), ["members", ...args, "--endpoints", (context.cluster as KvCluster).urls.join(",")], { timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`synod-kv members ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

it("a 3-replica cluster under load grows to 5 and shrinks back to 3, the leader among the removed: no acknowledged write lost, history linearizable, no error a client cannot retry", { timeout: 120_000 }, async () => {
  const cluster = (context.cluster = await KvCluster.start({ flags: SNAPSHOT_FLAGS }));
  const random = new SeededRandom(SEED);
  const recording = newRecording();
  for (let worker = 0; worker < 4; worker += 1) clients.push(cluster.client({ requestTimeoutMs: 1_000, operationTimeoutMs: 20_000 }));
  let running = true;
  const workers = clients.map((client, worker) => runWorker(worker, client, random.fork(), recording, () => running));
  try {
    await sleep(500);
    const n4 = await cluster.join("n4");
    const n5 = await cluster.join("n5");
    await members("add", `n4=${n4.url}`);
    const grown = (await members("add", `n5=${n5.url}`)) as View["config"];
    expect([...grown.voters].sort()).toEqual(["n1", "n2", "n3", "n4", "n5"]);
    await sleep(500);

    // Remove the leader and one other voter: the leader hands over first.
    const before = (await members("list")) as View;
    const leader = before.members.find((member) => member.leader)?.id as string;
    const other = before.config.voters.find((id) => id !== leader && id !== "n4") as string;
    await members("remove", leader);
    const shrunk = (await members("remove", other)) as View["config"];
    const remaining = ["n1", "n2", "n3", "n4", "n5"].filter((id) => id !== leader && id !== other);
    expect([...shrunk.voters].sort()).toEqual(remaining);
    await sleep(500);
  } finally {
    running = false;
    await Promise.all(workers);
  }

  const reader = cluster.client({ requestTimeoutMs: 1_000, operationTimeoutMs: 20_000 });
  clients.push(reader);
  await recordFinalReads(reader, recording);
  const after = (await members("list")) as View;
  const leaderNow = after.members.find((member) => member.leader)?.id;
  const verdicts = checkKeyHistories(recording.history, 15_000);
  const summary = `seed ${SEED} (SYNOD_KV_MEMBERSHIP_SEED): ${recording.tally.ok} ok, ${recording.tally.unknownWrites} writes unknown, leader now ${leaderNow}`;
  console.log(summary);
  expect(verdicts.filter((verdict) => verdict.verdict !== "linearizable").map((verdict) => `${verdict.key}: ${briefReport(verdict.report)}`).join("\n"), summary).toBe("");
  // Every error a client saw was retried away: none was refused.
  expect(recording.tally.failed, summary).toBe(0);
  expect(recording.tally.ok, summary).toBeGreaterThan(100);
  expect(after.config.voters.includes(leaderNow as string)).toBe(true);
});

it("a replica whose data directory is wiped rejoins as a learner, catches up through a snapshot (the log was compacted), and is promoted", { timeout: 120_000 }, async () => {
  const cluster = (context.cluster = await KvCluster.start({ flags: SNAPSHOT_FLAGS }));
  const writer = cluster.client({ requestTimeoutMs: 1_000, operationTimeoutMs: 20_000 });
  clients.push(writer);
  for (let index = 0; index < 150; index += 1) await writer.put(`a${index}`, `v${index}`);
  const victim = (((await members("list")) as View).members.find((member) => !member.leader) as { id: string }).id;

  // The disk is lost: the operator takes the replica out, wipes it, and the cluster moves on without it.
  await cluster.kill(victim);
  await members("remove", victim);
  cluster.wipe(victim);
  for (let index = 150; index < 400; index += 1) await writer.put(`a${index}`, `v${index}`);

  // It comes back empty, joins, and is added back: it can only catch up through a snapshot.
  const replica = await cluster.join(victim);
  const promoted = (await members("add", `${victim}=${replica.url}`)) as View["config"];
  expect(promoted.voters).toContain(victim);
  await until(() => replica.logs.join("").includes('"snapshot installed"'), 10_000, `${victim} to install a snapshot`);
  const local = cluster.client({ urls: [replica.url], requestTimeoutMs: 1_000, operationTimeoutMs: 10_000 });
  clients.push(local);
  await until(async () => (await local.get("a399", { serializable: true }))?.value === "v399", 10_000, `${victim} to serve the latest write`);
  expect((await local.get("a0", { serializable: true }))?.value).toBe("v0");
  const view = (await members("list")) as View;
  expect(view.members.find((member) => member.id === victim)?.role).toBe("voter");
});


it("a snapshot transfer killed halfway goes on where it stopped when the replica restarts", { timeout: 120_000 }, async () => {
  const cluster = (context.cluster = await KvCluster.start({ flags: SNAPSHOT_FLAGS }));
  const writer = cluster.client({ requestTimeoutMs: 1_000, operationTimeoutMs: 20_000 });
  clients.push(writer);
  // About 10 MB of state, fetched in 8 KiB chunks: a transfer of over a thousand chunks.
  const filler = "x".repeat(16 * 1024);
  for (let index = 0; index < 600; index += 1) await writer.put(`big${index}`, `${index}:${filler}`);
  const replica = await cluster.join("n4", ["--snapshot-chunk-bytes", "8192"]);
  await members("add", `n4=${replica.url}`, "--learner");

  // Killed as soon as part of the snapshot has arrived.
  await until(() => logLines(replica, "snapshot transfer").some((line) => (line.offset as number) > 0), 30_000, "n4 to receive part of the snapshot", 5);
  await cluster.kill("n4");
  const before = logLines(replica, "snapshot transfer");
  const reached = Math.max(...before.map((line) => line.offset as number));
  const size = before[0]?.bytes as number;
  expect(logLines(replica, "snapshot installed")).toEqual([]);
  expect(reached).toBeLessThan(size);

  const restartedAt = replica.logs.length;
  await cluster.restart("n4");
  await until(() => logLines(replica, "snapshot installed", restartedAt).length > 0, 30_000, "n4 to install the snapshot after its restart");
  const resumed = logLines(replica, "snapshot transfer resumed", restartedAt);
  console.log(`snapshot of ${size} bytes: killed after ${reached}+ bytes, resumed at ${resumed[0]?.offset}`);
  // It asked for the bytes after those it had stored, of the same snapshot, not for the snapshot from its start.
  expect(resumed.length).toBeGreaterThan(0);
  expect(resumed[0]?.offset as number).toBeGreaterThanOrEqual(reached);
  expect(resumed[0]?.slot).toBe(before[0]?.slot);
  expect(logLines(replica, "snapshot transfer", restartedAt).filter((line) => line.offset === 0)).toEqual([]);

  const local = cluster.client({ urls: [replica.url], requestTimeoutMs: 1_000, operationTimeoutMs: 10_000 });
  clients.push(local);
  await until(async () => (await local.get("big599", { serializable: true }))?.value === `599:${filler}`, 10_000, "n4 to serve the latest write");
  expect((await local.get("big0", { serializable: true }))?.value).toBe(`0:${filler}`);
});

// The fault campaign's seed 7008 got stuck here: the replica applied the configuration without n2 in a Ready
// of its own, and then a connection from n2 dropped and was refused ("n2 is not a member"). This test does
// not force that timing (it passes on the old code too); `server/test/peers.test.ts` holds the rule.
it("a replica that re-learns the log through the removal of the replica leading now (added back since) still hears that leader, and catches up", { timeout: 120_000 }, async () => {
  // No snapshots: a replica that lost its disk re-learns the whole log, the removal included.
  const cluster = (context.cluster = await KvCluster.start({ flags: ["--snapshot-every-slots", "0"] }));
  const writer = cluster.client({ requestTimeoutMs: 1_000, operationTimeoutMs: 20_000 });
  clients.push(writer);
  await writer.put("k", "v0");

  // n2 taken out of the configuration and brought back wiped, as an operator would.
  await members("remove", "n2");
  await cluster.kill("n2");
  cluster.wipe("n2");
  // Enough slots between the removal and the return that catching up through them takes many round trips.
  await Promise.all(Array.from({ length: 8 }, async (_, worker) => {
    for (let index = 0; index < 250; index += 1) await writer.put(`filler${worker}`, `${index}`);
  }));
  const n2 = await cluster.join("n2");
  await members("add", `n2=${n2.url}`);
  await writer.put("k", "v1");

  // n2 leads: whoever else leads is stopped until it does.
  let leader = await cluster.waitForLeader();
  for (let attempt = 0; attempt < 10 && leader !== "n2"; attempt += 1) {
    await cluster.kill(leader);
    const next = await cluster.waitForLeader();
    await cluster.restart(leader);
    leader = next === "n2" ? next : await cluster.waitForLeader();
  }
  expect(leader).toBe("n2");

  // Another replica loses its disk. Re-learning the log from n2, it passes the configuration without n2.
  const victim = cluster.replicas.find((replica) => replica.id !== "n2") as Replica;
  const restartedAt = victim.logs.length;
  await cluster.kill(victim.id);
  cluster.wipe(victim.id);
  await cluster.restart(victim.id);
  await writer.put("k", "v2");
  const local = cluster.client({ urls: [victim.url], requestTimeoutMs: 1_000, operationTimeoutMs: 5_000 });
  clients.push(local);
  await until(async () => (await local.get("k", { serializable: true }).catch(() => undefined))?.value === "v2", 20_000, `${victim.id} to catch up from n2`);
  expect(logLines(victim, "peer rejected", restartedAt).filter((line) => line.reason === "n2 is not a member")).toEqual([]);
});
