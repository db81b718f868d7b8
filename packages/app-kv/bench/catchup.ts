/**
 * How long a new member takes to catch up from a snapshot, and what the
 * cluster writes meanwhile.
 *
 * For each size (BENCH_CATCHUP_MB, default "100,1000"): a 3-replica KV
 * cluster on loopback is filled with that much state (64 KiB values), takes
 * one snapshot at the end of the fill and compacts its log behind it. A
 * fourth replica then starts empty with `--join` and is added as a learner
 * (`members add --learner`): it can only catch up through the snapshot,
 * streamed in checksummed chunks. The bench measures the time from the add
 * until the learner is within 64 slots of the leader, and the write rate of
 * a small-put load (BENCH_CATCHUP_CLIENTS, default 8) before and during.
 *
 * BENCH_CATCHUP_MODE=rebuild measures a lost disk instead: a follower is
 * killed, its data directory wiped, and it is restarted as a member
 * (`--rejoin`); it rebuilds from the others (Paxos Made Live §5.1). The
 * bench reports when it voted again and when it had caught up.
 *
 *   pnpm --filter @synod/app-kv bench:catchup
 *   BENCH_CATCHUP_MB=100 pnpm --filter @synod/app-kv bench:catchup
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SynodClient } from "@synod/transport-ws";
import { ServeCluster, type ServeReplicaStatus, bundleScript, sleep, until } from "@synod/testkit/processes";
import { KvClient } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const SIZES_MB = (process.env.BENCH_CATCHUP_MB ?? "100,1000").split(",").map(Number);
const CLIENTS = Number(process.env.BENCH_CATCHUP_CLIENTS ?? 8);
const MODE = process.env.BENCH_CATCHUP_MODE ?? "join";
if (MODE !== "join" && MODE !== "rebuild") throw new Error(`BENCH_CATCHUP_MODE is join or rebuild, not ${MODE}`);
const VALUE_BYTES = 64 * 1024;
const MIB = 1024 * 1024;

interface View {
  readonly members: readonly { readonly id: string; readonly role: string; readonly lagSlots?: number; readonly leader: boolean }[];
}

/** Small puts from `CLIENTS` clients until stopped; counts the ones answered. */
function writeLoad(urls: readonly string[]): { readonly count: () => number; stop(): Promise<void> } {
  let running = true;
  let done = 0;
  const clients = Array.from({ length: CLIENTS }, () => new KvClient({ urls, requestTimeoutMs: 2_000, operationTimeoutMs: 60_000 }));
  const loops = clients.map(async (client, worker) => {
    for (let index = 0; running; index += 1) {
      await client.put(`load/${worker}/${index % 100}`, `v${index}`);
      done += 1;
    }
  });
  return {
    count: () => done,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      await Promise.all(clients.map((client) => client.close()));
    },
  };
}

async function rate(load: { readonly count: () => number }, ms: number): Promise<number> {
  const before = load.count();
  const startedAt = performance.now();
  await sleep(ms);
  return ((load.count() - before) * 1_000) / (performance.now() - startedAt);
}

async function measure(script: string, megabytes: number): Promise<string> {
  const bytes = megabytes * MIB;
  const cluster = new ServeCluster({
    script,
    size: 3,
    tickMs: 50,
    flags: [
      "--quota-bytes", String(4 * bytes + 256 * MIB),
      "--snapshot-every-slots", "0",
      "--snapshot-every-bytes", String(Math.floor(bytes * 0.95)),
      "--snapshot-tail-slots", "100",
    ],
  });
  const probe = new KvClient({ urls: ["ws://127.0.0.1:1"], requestTimeoutMs: 2_000 });
  // Interrupted, the bench still stops the replicas it started (by PID) and removes their directories.
  const stop = () => void cluster.close().finally(() => process.exit(130));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await cluster.boot(() => cluster.leaderBy((url) => probe.replicaStatus(url) as Promise<ServeReplicaStatus>, 30_000));
    const admin = new SynodClient({ urls: cluster.urls, requestTimeoutMs: 5_000, operationTimeoutMs: 600_000 });

    // Fill: `bytes` of state in 64 KiB values, 16 writers.
    const value = "x".repeat(VALUE_BYTES);
    const keys = Math.ceil(bytes / VALUE_BYTES);
    const fillStartedAt = performance.now();
    let next = 0;
    const writers = Array.from({ length: 16 }, () => new KvClient({ urls: cluster.urls, requestTimeoutMs: 5_000, operationTimeoutMs: 120_000 }));
    await Promise.all(
      writers.map(async (writer) => {
        for (let key = next++; key < keys; key = next++) await writer.put(`state/${String(key).padStart(8, "0")}`, value);
      }),
    );
    await Promise.all(writers.map((writer) => writer.close()));
    const fillSeconds = (performance.now() - fillStartedAt) / 1_000;
    // The snapshot at the end of the fill is written and the log compacted behind it on every replica.
    await until(
      async () => {
        const views = await Promise.all(cluster.urls.map((url) => probe.replicaStatus(url).catch(() => undefined) as Promise<{ logStart?: number } | undefined>));
        return views.every((view) => (view?.logStart ?? 0) > 0);
      },
      600_000,
      "every replica to snapshot and compact its log",
      500,
    );
    await sleep(1_000);

    const load = writeLoad(cluster.urls);
    const before = await rate(load, 3_000);
    let joiner: Awaited<ReturnType<typeof cluster.join>>;
    let added: Promise<unknown>;
    let addedAt: number;
    const target = MODE === "join" ? "n4" : (((await admin.members({ action: "list" })) as View).members.find((member) => !member.leader)?.id as string);
    if (MODE === "join") {
      joiner = await cluster.join(target);
      addedAt = performance.now();
      added = admin.members({ action: "add", id: target, endpoint: joiner.url, learner: true });
    } else {
      await cluster.kill(target);
      cluster.wipe(target);
      addedAt = performance.now();
      await cluster.restart(target);
      joiner = cluster.replica(target);
      added = Promise.resolve();
    }
    let during = 0;
    let caughtUp = false;
    const sampler = (async () => {
      const samples: number[] = [];
      while (!caughtUp) samples.push(await rate(load, 1_000));
      during = samples.length === 0 ? 0 : samples.reduce((sum, sample) => sum + sample, 0) / samples.length;
    })();
    let installedSeconds: number | undefined;
    const watcher = (async () => {
      while (!caughtUp && installedSeconds === undefined) {
        if (joiner.logs.join("").includes('"snapshot installed"')) installedSeconds = (performance.now() - addedAt) / 1_000;
        await sleep(50);
      }
    })();
    await added;
    await until(
      async () => {
        const view = (await admin.members({ action: "list" })) as View;
        const lag = view.members.find((member) => member.id === target)?.lagSlots;
        return lag !== undefined && lag <= 64;
      },
      1_800_000,
      `${target} to catch up`,
      200,
    );
    const catchUpSeconds = (performance.now() - addedAt) / 1_000;
    caughtUp = true;
    await Promise.all([sampler, watcher]);
    await load.stop();
    await admin.close();
    const viaSnapshot = joiner.logs.join("").includes('"snapshot installed"');
    const rebuilt = /"msg":"rebuilt: voting again"[^\n]*"ms":(\d+)/.exec(joiner.logs.join(""));
    const who = MODE === "join" ? "a new member" : `a follower whose disk was wiped${rebuilt === null ? " (NOT rebuilt)" : ` voted again after ${(Number(rebuilt[1]) / 1_000).toFixed(1)} s of rebuilding and`}`;
    return `${megabytes} MB of state (${keys} keys of 64 KiB, filled in ${fillSeconds.toFixed(1)} s): ${who} caught up in ${catchUpSeconds.toFixed(1)} s (${(megabytes / catchUpSeconds).toFixed(1)} MB/s)${viaSnapshot ? `, its snapshot installed after ${installedSeconds?.toFixed(1) ?? "?"} s` : " WITHOUT a snapshot"}; writes ${before.toFixed(0)}/s before, ${during.toFixed(0)}/s while it caught up (${((100 * during) / Math.max(1, before)).toFixed(0)} %)`;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await probe.close();
    await cluster.close();
  }
}

const script = await bundleScript(join(here, "..", "src", "cli.ts"), join(here, ".build", "synod-kv.mjs"));
console.log(`catch-up bench (${MODE}): sizes ${SIZES_MB.join(", ")} MB, ${CLIENTS} writers of small puts during the catch-up; node ${process.version}`);
for (const megabytes of SIZES_MB) console.log(await measure(script, megabytes));
