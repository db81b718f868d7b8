/**
 * Scenarios against real 3-replica clusters (`synod-kv serve` processes on
 * loopback, see `cluster.ts`): what a user of the store relies on, checked
 * through the client and the CLI while replicas crash, stall and lag.
 *
 * A test that kills or stops a replica gets a cluster of its own; the rest
 * share one. Every wait is bounded and says what it waited for.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ClientError, CompactedError, type KvClient, type KvEvent, KvOperationError, compare } from "../src/index.js";
import { KvCluster, type Replica } from "./cluster.js";
import { WatchRecorder, roles, runCli, sleep, spawnFixture, until } from "./scenario-helpers.js";

/** Starts a cluster, runs `body`, then closes every client it made and the cluster, whatever happened. */
async function withCluster(options: Parameters<typeof KvCluster.start>[0], body: (cluster: KvCluster, client: (...args: Parameters<KvCluster["client"]>) => KvClient) => Promise<void>): Promise<void> {
  const cluster = await KvCluster.start(options);
  const clients: KvClient[] = [];
  try {
    await body(cluster, (clientOptions) => {
      const client = cluster.client(clientOptions);
      clients.push(client);
      return client;
    });
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await cluster.close();
  }
}

/** The id of the replica a client currently talks to (where its next request, or a watch opened now, goes). */
async function targetOf(client: KvClient): Promise<string> {
  return ((await client.replicaStatus()) as { id: string }).id;
}

describe("a write acknowledged through one replica is read through another", () => {
  test("across a leader crash, and after it", { timeout: 40_000 }, () =>
    withCluster({}, async (cluster, client) => {
      const { leader, followers } = await roles(cluster);
      const [x, y] = followers as [Replica, Replica];
      const writer = client({ urls: [x.url] });
      const reader = client({ urls: [y.url] });

      const before = await writer.put("handoff/before", "acknowledged");
      await cluster.kill(leader.id);
      // The reader knows only y; the linearizable read waits for a new leader and must see the acknowledged write.
      expect(await reader.get("handoff/before")).toMatchObject({ value: "acknowledged", modRevision: before.revision });
      const newLeader = await cluster.waitForLeader();
      expect(newLeader).not.toBe(leader.id);

      let last = before.revision;
      for (let index = 0; index < 20; index += 1) {
        const put = await writer.put(`handoff/after/${String(index).padStart(2, "0")}`, `v${index}`);
        expect(put.revision).toBeGreaterThan(last);
        last = put.revision;
      }
      const linearizable = await reader.range({ prefix: "handoff/after/" });
      expect(linearizable.revision).toBeGreaterThanOrEqual(last);
      expect(linearizable.kvs.map((kv) => kv.value)).toEqual(Array.from({ length: 20 }, (_, index) => `v${index}`));
      // The reader has now seen `last`: a serializable read on y may not be older.
      const serializable = await reader.get("handoff/after/19", { serializable: true });
      expect(serializable).toMatchObject({ value: "v19", modRevision: last });
      // A serializable read says which revision it reflects: never before what the reader has seen.
      const at = await reader.getAt("handoff/after/19", { serializable: true });
      expect(at.revision).toBeGreaterThanOrEqual(reader.seenRevision);
      expect(at.kv).toMatchObject({ value: "v19" });

      // The crashed leader rejoins and catches up: a client that knows only it reads everything.
      await cluster.restart(leader.id);
      const rejoined = client({ urls: [leader.url] });
      await until(async () => (await rejoined.get("handoff/after/19", { serializable: true }))?.value === "v19", 15_000, `${leader.id} to catch up after its restart`);
      expect(await rejoined.get("handoff/before", { serializable: true })).toMatchObject({ value: "acknowledged", modRevision: before.revision });
    }),
  );
});

describe("on a healthy cluster", () => {
  let cluster: KvCluster;
  const clients: KvClient[] = [];
  const client = (...args: Parameters<KvCluster["client"]>): KvClient => {
    const made = cluster.client(...args);
    clients.push(made);
    return made;
  };

  beforeAll(async () => {
    cluster = await KvCluster.start();
  }, 30_000);

  afterAll(async () => {
    await Promise.all(clients.map((made) => made.close()));
    await cluster?.close();
  });

  test("a transaction runs exactly one branch; its writes share a revision and reach a watcher in one batch", { timeout: 20_000 }, async () => {
    const { leader } = await roles(cluster);
    const kv = client();
    const base = await kv.put("txn/marker", "start");
    // On the leader each transaction is applied (and handed to watchers) before the next is even proposed.
    const recorder = new WatchRecorder(client({ urls: [leader.url] }).watch({ prefix: "txn/" }, { fromRevision: base.revision + 1 }));
    try {
      const spec = {
        if: [compare.absent("txn/a")],
        then: [
          { type: "put", key: "txn/a", value: "a1" },
          { type: "put", key: "txn/b", value: "b1" },
          { type: "put", key: "txn/c", value: "c1" },
        ],
        else: [
          { type: "put", key: "txn/x", value: "x1" },
          { type: "put", key: "txn/y", value: "y1" },
        ],
      } as const;

      const first = await kv.txn(spec);
      expect(first.succeeded).toBe(true);
      expect(first.revision).toBe(base.revision + 1);
      expect(first.results).toEqual([
        { type: "put", revision: first.revision },
        { type: "put", revision: first.revision },
        { type: "put", revision: first.revision },
      ]);
      expect((await kv.range({ prefix: "txn/" })).kvs.map((item) => item.key)).toEqual(["txn/a", "txn/b", "txn/c", "txn/marker"]);

      const second = await kv.txn(spec);
      expect(second.succeeded).toBe(false);
      expect(second.revision).toBe(first.revision + 1);
      expect(second.results).toEqual([
        { type: "put", revision: second.revision },
        { type: "put", revision: second.revision },
      ]);
      const after = await kv.range({ prefix: "txn/" });
      expect(after.kvs.map((item) => [item.key, item.value, item.modRevision])).toEqual([
        ["txn/a", "a1", first.revision],
        ["txn/b", "b1", first.revision],
        ["txn/c", "c1", first.revision],
        ["txn/marker", "start", base.revision],
        ["txn/x", "x1", second.revision],
        ["txn/y", "y1", second.revision],
      ]);

      await recorder.waitFor((watch) => watch.batches.some((batch) => batch.revision >= second.revision), 5_000, "the watcher to reach the second transaction");
      const put = (key: string, value: string, revision: number): KvEvent => ({ type: "put", revision, key, value, createRevision: revision, version: 1, lease: 0 });
      expect(recorder.changes).toEqual([
        { revision: first.revision, events: [put("txn/a", "a1", first.revision), put("txn/b", "b1", first.revision), put("txn/c", "c1", first.revision)] },
        { revision: second.revision, events: [put("txn/x", "x1", second.revision), put("txn/y", "y1", second.revision)] },
      ]);
    } finally {
      recorder.close();
    }
  });

  test("a watch from a compacted revision throws CompactedError; from the compaction point it resumes", { timeout: 20_000 }, async () => {
    const kv = client();
    const revisions: number[] = [];
    for (let index = 0; index < 5; index += 1) revisions.push((await kv.put(`compact/k${index}`, `v${index}`)).revision);
    const target = revisions[3] as number;
    expect(await kv.compact(target)).toBe(target);
    // A watch may open on any replica: wait until every one has applied the compaction.
    for (const replica of cluster.replicas) {
      const local = client({ urls: [replica.url] });
      await until(async () => (await local.status()).compactRevision >= target, 5_000, `${replica.id} to apply the compaction`);
    }

    const compacted = new WatchRecorder(kv.watch({ prefix: "compact/" }, { fromRevision: revisions[0] as number }));
    await compacted.waitFor((watch) => watch.ended, 5_000, "the watch from a compacted revision to end");
    expect(compacted.error).toBeInstanceOf(CompactedError);
    expect((compacted.error as CompactedError).compactRevision).toBe(target);
    expect(compacted.events).toEqual([]);

    const resumed = new WatchRecorder(kv.watch({ prefix: "compact/" }, { fromRevision: (compacted.error as CompactedError).compactRevision }));
    try {
      await resumed.waitFor((watch) => watch.events.length >= 2, 5_000, "the watch from the compaction point to catch up");
      expect(resumed.events.map((event) => [event.key, event.revision])).toEqual([
        ["compact/k3", revisions[3]],
        ["compact/k4", revisions[4]],
      ]);
    } finally {
      resumed.close();
    }
  });

  test("a TTL key outlives 2×TTL while its holder lives, and vanishes within TTL + 2 s after the holder is killed", { timeout: 30_000 }, async () => {
    const ttlMs = 1_000;
    const graceMs = 2_000;
    const key = "lease/lock";
    const kv = client();
    const holder = await spawnFixture("lease-holder", [cluster.urls.join(","), key, String(ttlMs)]);
    let recorder: WatchRecorder | undefined;
    try {
      const [, leaseText, revisionText] = (await holder.line("held ", 15_000)).split(" ");
      const lease = Number(leaseText);
      const putRevision = Number(revisionText);
      expect(await kv.get(key)).toMatchObject({ value: "held", lease, modRevision: putRevision });
      const watcher = new WatchRecorder(kv.watch(key, { fromRevision: putRevision + 1 }));
      recorder = watcher;

      const aliveUntil = Date.now() + 2.5 * ttlMs;
      while (Date.now() < aliveUntil) {
        expect(await kv.get(key)).toMatchObject({ value: "held", lease });
        await sleep(200);
      }
      expect(holder.output()).not.toContain("lost");
      expect(watcher.events).toEqual([]);

      await holder.kill();
      const killedAt = Date.now();
      await until(async () => (await kv.get(key)) === null, ttlMs + graceMs + 1_000, "the key to vanish after its holder was killed", 50);
      const vanishedAfterMs = Date.now() - killedAt;
      expect(vanishedAfterMs).toBeLessThanOrEqual(ttlMs + graceMs);
      await watcher.waitFor((watch) => watch.events.length > 0, 2_000, "the delete event");
      expect(watcher.events).toEqual([{ type: "delete", revision: expect.any(Number), key, prevValue: "held" }]);
      await expect(kv.leaseInfo(lease)).rejects.toMatchObject({ code: "LEASE_NOT_FOUND" });
    } finally {
      recorder?.close();
      await holder.kill();
    }
  });

  test("the synod-kv CLI as a client: put, get, txn, range; exit codes 0, 1 and 2", { timeout: 30_000 }, async () => {
    const endpoints = ["--endpoints", cluster.urls.join(",")];

    const put = await runCli(["put", "cli/a", "one", ...endpoints]);
    expect(put).toMatchObject({ code: 0, stderr: "" });
    const putResult = JSON.parse(put.stdout) as { type: string; revision: number };
    expect(putResult).toEqual({ type: "put", revision: expect.any(Number) });

    const [get, missing, help, unknown, badLimit, noLease] = await Promise.all([
      runCli(["get", "cli/a", ...endpoints]),
      runCli(["get", "cli/missing", ...endpoints]),
      runCli(["--help"]),
      runCli(["frobnicate", ...endpoints]),
      runCli(["range", "--prefix", "cli/", "--limit", "abc", ...endpoints]),
      runCli(["lease", "keepalive", "12345", ...endpoints]),
    ]);
    expect(get).toEqual({ code: 0, stdout: "one\n", stderr: "" });
    expect(missing).toEqual({ code: 1, stdout: "", stderr: "" });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("synod-kv get KEY");
    expect(help.stdout).toContain("Exit status: 0 done, 1");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    expect(unknown.stderr).toContain("synod-kv --help");
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toContain('--limit takes a non-negative integer, not "abc"');
    expect(badLimit.stdout).toBe("");
    expect(noLease.code).toBe(1);
    expect(noLease.stderr).toContain("LEASE_NOT_FOUND");

    const spec = JSON.stringify({ if: [{ type: "absent", key: "cli/b" }], then: [{ type: "put", key: "cli/b", value: "two" }], else: [{ type: "get", key: "cli/b" }] });
    const created = await runCli(["txn", spec, ...endpoints]);
    expect(created.code).toBe(0);
    const createdResult = JSON.parse(created.stdout) as { succeeded: boolean; revision: number };
    expect(createdResult).toMatchObject({ succeeded: true, results: [{ type: "put" }] });
    expect(createdResult.revision).toBeGreaterThan(putResult.revision);
    const again = await runCli(["txn", "-", ...endpoints], { stdin: spec });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ succeeded: false, results: [{ type: "get", kv: { key: "cli/b", value: "two" } }] });
    const notJson = await runCli(["txn", "{nope", ...endpoints]);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain("the transaction is not JSON");

    const range = await runCli(["range", "--prefix", "cli/", ...endpoints]);
    expect(range.code).toBe(0);
    expect(JSON.parse(range.stdout)).toMatchObject({
      type: "range",
      count: 2,
      more: false,
      kvs: [
        { key: "cli/a", value: "one", modRevision: putResult.revision },
        { key: "cli/b", value: "two", modRevision: createdResult.revision },
      ],
    });
  });
});

describe("a watch survives losing its replica", () => {
  test("1,000 writes while the watched replica is killed and restarted: every event once, in order", { timeout: 60_000 }, () =>
    withCluster({}, async (cluster, client) => {
      const { followers } = await roles(cluster);
      const writer = client();
      const watcher = client({ urls: followers.map((replica) => replica.url) });
      const base = await writer.put("resume/start", "");
      const watchedId = await targetOf(watcher);
      const recorder = new WatchRecorder(watcher.watch({ prefix: "resume/w/" }, { fromRevision: base.revision + 1 }));
      try {
        const total = 1_000;
        const inFlight = 8;
        const revisions = new Map<string, number>();
        let issued = 0;
        const worker = async () => {
          while (issued < total) {
            const index = issued++;
            const key = `resume/w/${String(index).padStart(4, "0")}`;
            revisions.set(key, (await writer.put(key, `v${index}`)).revision);
          }
        };
        const chaos = async () => {
          await until(() => revisions.size >= 100 && recorder.events.length > 0, 20_000, "100 writes, some of them watched");
          await cluster.kill(watchedId);
          await until(() => revisions.size >= 600, 20_000, "600 writes");
          await cluster.restart(watchedId);
        };
        await Promise.all([...Array.from({ length: inFlight }, worker), chaos()]);

        const expected = [...revisions].sort((left, right) => left[1] - right[1]);
        const lastRevision = (expected[expected.length - 1] as [string, number])[1];
        await recorder.waitFor((watch) => (watch.batches[watch.batches.length - 1]?.revision ?? 0) >= lastRevision, 15_000, `the watcher to reach revision ${lastRevision}`);
        // The watch moved off the killed replica (so it did resume) ...
        expect(await targetOf(watcher)).not.toBe(watchedId);
        // ... and got every write exactly once, in revision order, with nothing else.
        expect(recorder.events.map((event) => [event.key, event.revision])).toEqual(expected);
        expect(recorder.events.every((event) => event.type === "put" && event.value === `v${Number(event.key.slice("resume/w/".length))}`)).toBe(true);
        const batchRevisions = recorder.batches.map((batch) => batch.revision);
        expect(batchRevisions).toEqual([...batchRevisions].sort((left, right) => left - right));
        for (const batch of recorder.batches) for (const event of batch.events) expect(event.revision).toBeLessThanOrEqual(batch.revision);
      } finally {
        recorder.close();
      }
    }),
  );
});

describe("limits are checked before anything is proposed", () => {
  test("a value one byte over --max-value-bytes is refused and nothing changes, alone or in a transaction", { timeout: 30_000 }, () =>
    withCluster({ flags: ["--max-value-bytes", "1024"] }, async (_cluster, client) => {
      const kv = client();
      const fits = await kv.put("limit/k", "x".repeat(1024));
      // Bytes are UTF-8 bytes, not UTF-16 code units: 256 four-byte characters fill the limit.
      await kv.put("limit/wide", "😀".repeat(256));
      const revision = (await kv.status()).revision;
      expect(revision).toBe(fits.revision + 1);

      const refusals = [
        kv.put("limit/k", "y".repeat(1025)),
        kv.put("limit/wide", `${"😀".repeat(256)}y`),
        kv.put("limit/new", "é".repeat(513)),
        kv.txn({ then: [{ type: "put", key: "limit/other", value: "fine" }, { type: "put", key: "limit/k", value: "y".repeat(1025) }] }),
        // Both branches are checked, whichever would run.
        kv.txn({ if: [compare.absent("limit/nothing")], then: [{ type: "put", key: "limit/other", value: "fine" }], else: [{ type: "put", key: "limit/k", value: "y".repeat(1025) }] }),
      ];
      for (const refusal of refusals) {
        const error = await refusal.then(
          () => undefined,
          (caught: unknown) => caught,
        );
        expect(error).toBeInstanceOf(KvOperationError);
        expect(error).toMatchObject({ code: "VALUE_TOO_LARGE", error: { limit: 1024 } });
      }

      expect((await kv.status()).revision).toBe(revision);
      const after = await kv.range({ prefix: "limit/" });
      expect(after.revision).toBe(revision);
      expect(after.kvs.map((item) => [item.key, item.value, item.version])).toEqual([
        ["limit/k", "x".repeat(1024), 1],
        ["limit/wide", "😀".repeat(256), 1],
      ]);
    }),
  );
});

describe("a client that has seen revision R never reads older data", () => {
  test("after a leader crash it reconnects to a replica that was stopped while 50 revisions were written", { timeout: 30_000 }, () =>
    withCluster({}, async (cluster, client) => {
      const { leader, followers } = await roles(cluster);
      const lagging = followers[0] as Replica;
      // The client knows only the replica that will lag; its writes follow the leader hint.
      const kv = client({ urls: [lagging.url] });
      const first = await kv.put("lag/k", "v0");
      // (If a write fails, `close` continues the stopped replica before it kills it.)
      cluster.signal(lagging.id, "SIGSTOP");
      let last = first;
      for (let index = 1; index <= 50; index += 1) last = await kv.put("lag/k", `v${index}`);
      const seen = kv.seenRevision;
      expect(seen).toBe(last.revision);
      expect(seen).toBe(first.revision + 50);

      // The leader crashes: the client's next call goes to the only replica it knows, which has
      // only just been continued (the writes it missed are, at best, still in its socket buffers).
      await cluster.kill(leader.id);
      cluster.signal(lagging.id, "SIGCONT");
      const read = await kv.get("lag/k", { serializable: true });
      expect(read).toMatchObject({ value: "v50", modRevision: last.revision });
      expect(await targetOf(kv)).toBe(lagging.id);
      for (let index = 0; index < 10; index += 1) {
        const range = await kv.range({ prefix: "lag/" }, { serializable: true });
        expect(range.revision).toBeGreaterThanOrEqual(seen);
        expect(range.kvs.map((item) => [item.value, item.modRevision])).toEqual([["v50", last.revision]]);
      }
    }),
  );

  test("its read on a replica restarted 50 revisions behind, with no quorum to catch up from, waits rather than answer stale", { timeout: 30_000 }, () =>
    withCluster({}, async (cluster, client) => {
      const { leader, followers } = await roles(cluster);
      const [lagging, other] = followers as [Replica, Replica];
      const kv = client({ urls: [lagging.url] });
      const first = await kv.put("lag/k", "v0");
      await cluster.kill(lagging.id);
      let last = first;
      for (let index = 1; index <= 50; index += 1) last = await kv.put("lag/k", `v${index}`);
      expect(kv.seenRevision).toBe(first.revision + 50);

      // Only the killed replica comes back: the leader is dead and the other follower stopped, so
      // nothing can bring it past what it had on disk until the other follower continues.
      cluster.signal(other.id, "SIGSTOP");
      await cluster.kill(leader.id);
      await cluster.restart(lagging.id);
      let answered = false;
      const read = kv.get("lag/k", { serializable: true }).finally(() => {
        answered = true;
      });
      // A client that has seen nothing is served the replica's stale state ...
      const stale = await client({ urls: [lagging.url] }).get("lag/k", { serializable: true });
      expect(stale?.modRevision ?? 0).toBeLessThan(last.revision);
      // ... while the client that has seen `last` is not (it waits; `LAGGING` sends it back to the only replica it knows).
      await sleep(1_500);
      expect(answered).toBe(false);

      cluster.signal(other.id, "SIGCONT");
      expect(await read).toMatchObject({ value: "v50", modRevision: last.revision });
      expect(await targetOf(kv)).toBe(lagging.id);
      expect(kv.seenRevision).toBeGreaterThanOrEqual(last.revision);
    }),
  );
});

describe("exactly once across a leader crash", () => {
  test("200 increments, 8 in flight, the leader killed midway: each applied once", { timeout: 60_000 }, () =>
    withCluster({}, async (cluster, client) => {
      const { leader } = await roles(cluster);
      const kv = client();
      const key = "incr/counter";
      const total = 200;
      const returned: number[] = [];
      const failures: unknown[] = [];
      let unknownOutcomes = 0;
      let issued = 0;
      let settled = 0;
      let settledAtKill = -1;
      const worker = async () => {
        while (issued < total) {
          issued += 1;
          try {
            returned.push(Number((await kv.increment(key)).value));
          } catch (error) {
            if (error instanceof ClientError && error.code === "UNKNOWN_OUTCOME") unknownOutcomes += 1;
            else failures.push(error);
          } finally {
            settled += 1;
          }
        }
      };
      const chaos = async () => {
        await until(() => settled >= 60, 20_000, "60 increments");
        settledAtKill = settled;
        await cluster.kill(leader.id);
      };
      await Promise.all([...Array.from({ length: 8 }, worker), chaos()]);

      expect(failures).toEqual([]);
      expect(settled).toBe(total);
      expect(settledAtKill).toBeLessThan(total - 8);
      expect(returned.length + unknownOutcomes).toBe(total);
      // No increment was applied twice: each returned a different count ...
      expect(new Set(returned).size).toBe(returned.length);
      const final = Number((await kv.get(key))?.value);
      // ... and the counter holds every acknowledged increment, plus at most the ones of unknown outcome.
      expect(final).toBeGreaterThanOrEqual(returned.length);
      expect(final).toBeLessThanOrEqual(returned.length + unknownOutcomes);
      expect(Math.max(...returned)).toBeLessThanOrEqual(final);
      if (unknownOutcomes === 0) expect([...returned].sort((left, right) => left - right)).toEqual(Array.from({ length: total }, (_, index) => index + 1));

      // The crashed leader rejoins and agrees.
      await cluster.restart(leader.id);
      const rejoined = client({ urls: [leader.url] });
      await until(async () => (await rejoined.get(key, { serializable: true }))?.value === String(final), 15_000, `${leader.id} to catch up to ${final}`);
    }),
  );
});
