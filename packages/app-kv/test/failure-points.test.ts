/**
 * Failure points on real processes (Paxos Made Live §6.3): a `synod-kv`
 * replica started with `--crash-at POINT:N` kills itself (SIGKILL) the N-th
 * time it passes POINT. Restarted without it, it must come back whole, and
 * the cluster must have lost nothing it acknowledged.
 */
import { until } from "@synod/testkit/processes";
import { expect, it } from "vitest";
import { KvCluster, perTestCluster } from "./cluster.js";

const context = perTestCluster();
const clients = context.clients;

for (const point of ["after-persist-accept", "before-persist-accept", "after-snapshot"] as const) {
  it(`a follower that crashes itself at ${point} comes back whole, and no acknowledged write is lost`, { timeout: 60_000 }, async () => {
    const cluster = (context.cluster = await KvCluster.start({ flags: ["--snapshot-every-slots", "20", "--snapshot-tail-slots", "5"] }));
    const writer = cluster.client();
    clients.push(writer);
    await writer.put("k0", "v0");
    const leader = await cluster.waitForLeader();
    const victim = cluster.replicas.find((replica) => replica.id !== leader)?.id as string;
    await cluster.kill(victim);
    await cluster.restart(victim, ["--crash-at", `${point}:5`]);
    const replica = cluster.replica(victim);

    // Writes go on; the victim kills itself at its fifth pass of the point.
    let written = 0;
    for (; written < 200 && replica.child !== undefined; written += 1) await writer.put(`k${written + 1}`, `v${written + 1}`);
    await until(() => replica.child === undefined, 20_000, `${victim} to crash itself at ${point}`);
    expect(replica.logs.join("")).toContain(`"point":"${point}"`);
    for (let more = 0; more < 20; more += 1, written += 1) await writer.put(`k${written + 1}`, `v${written + 1}`);

    // Restarted without the hook, it catches up and serves every acknowledged write.
    await cluster.restart(victim, []);
    const local = cluster.client({ urls: [replica.url] });
    clients.push(local);
    await until(async () => (await local.get(`k${written}`, { serializable: true }))?.value === `v${written}`, 20_000, `${victim} to catch up`);
    for (let key = 0; key <= written; key += 1) expect((await writer.get(`k${key}`))?.value, `k${key}`).toBe(`v${key}`);
  });
}
