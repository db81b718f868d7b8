/**
 * Runtime consistency checks on real processes (Paxos Made Live §6.2): a
 * `synod-kv` replica started with `--inject-divergence-at SLOT` has its
 * state emptied behind the log's back once it applies SLOT. The next
 * check names it on every replica, it rebuilds itself from the others, and
 * serves every acknowledged write again; later checks agree.
 */
import { until } from "@synod/testkit/processes";
import { expect, it } from "vitest";
import { KvCluster, logLines, perTestCluster } from "./cluster.js";

const CHECK_EVERY_MS = 300;

const context = perTestCluster();
const clients = context.clients;


it("a replica whose state diverges is named by every replica at the next check, rebuilds itself, and serves every write again", { timeout: 120_000 }, async () => {
  const cluster = (context.cluster = await KvCluster.start({ flags: ["--check-every-ms", String(CHECK_EVERY_MS)] }));
  const writer = cluster.client();
  clients.push(writer);
  for (let index = 0; index < 50; index += 1) await writer.put(`k${index}`, `v${index}`);
  const leader = await cluster.waitForLeader();
  const victim = cluster.replicas.find((replica) => replica.id !== leader)?.id as string;
  const logsBefore = new Map(cluster.replicas.map((replica) => [replica.id, replica.logs.length]));

  // Restarted, it replays its log and, past slot 10, loses its state behind the log's back.
  await cluster.kill(victim);
  await cluster.restart(victim, ["--inject-divergence-at", "10"]);
  const replica = cluster.replica(victim);
  await until(() => logLines(replica, /^injected a divergence/).length > 0, 10_000, `${victim} to diverge`);
  const injectedAt = Date.parse(String(logLines(replica, /^injected a divergence/)[0]?.time));

  // Every replica raises the alarm, naming the victim.
  for (const member of cluster.replicas) {
    const from = member.id === victim ? 0 : (logsBefore.get(member.id) ?? 0);
    await until(() => logLines(member, /^consistency check failed/, from).length > 0, 10_000, `${member.id} to raise the alarm`);
    const alarm = logLines(member, /^consistency check failed/, from)[0];
    expect(alarm?.replica, `${member.id} names the diverged replica`).toBe(victim);
    expect(alarm?.self).toBe(member.id === victim);
    console.log(`${member.id} raised the alarm ${Date.parse(String(alarm?.time)) - injectedAt} ms after the divergence (checks every ${CHECK_EVERY_MS} ms)`);
  }

  // It rebuilds from the others and serves every acknowledged write, and more.
  await until(() => logLines(replica, "rebuilt: voting again").length > 0, 30_000, `${victim} to rebuild`);
  expect(logLines(replica, "rebuilding")[0]?.reason).toMatch(/diverged/);
  await writer.put("after", "rebuild");
  const local = cluster.client({ urls: [replica.url] });
  clients.push(local);
  await until(async () => (await local.get("after", { serializable: true }))?.value === "rebuild", 10_000, `${victim} to catch up`);
  for (let index = 0; index < 50; index += 1) expect((await local.get(`k${index}`, { serializable: true }))?.value, `k${index} on ${victim}`).toBe(`v${index}`);

  // Healed: the checks that follow find nothing more.
  const alarmsAfterHeal = cluster.replicas.map((member) => logLines(member, /^consistency check failed/).length);
  await new Promise((resolve) => setTimeout(resolve, 4 * CHECK_EVERY_MS));
  expect(cluster.replicas.map((member) => logLines(member, /^consistency check failed/).length)).toEqual(alarmsAfterHeal);
});
