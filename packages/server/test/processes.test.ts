import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Ballot, SeededRandom, compareBallots } from "@synod/core";
import { type KeyValueInput, type KeyValueOutput, type Operation, checkOperations, formatCheckResult, keyValueModel } from "@synod/testkit";
import { SynodClient } from "@synod/transport-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ReplicaProcess, bundleFixture, freePort, startReplica } from "./processes.js";

const SECRET = "a-cluster-secret-for-tests";
let script: string;
let dataRoot: string;
const started: ReplicaProcess[] = [];

beforeAll(async () => {
  script = await bundleFixture("kv-node");
  dataRoot = mkdtempSync(join(tmpdir(), "synod-processes-"));
});

afterAll(async () => {
  for (const replica of started) if (replica.child.exitCode === null && replica.child.signalCode === null) replica.child.kill("SIGKILL");
  await Promise.all(started.map((replica) => replica.exited));
  rmSync(dataRoot, { recursive: true, force: true });
});

async function launch(id: string, members: { id: string; url: string }[], rejoin = false): Promise<ReplicaProcess> {
  const config = { id, clusterId: "processes", members, dataDir: join(dataRoot, id), secret: SECRET, tickMs: 20, rejoin, logLevel: "warn" };
  const replica = await startReplica(script, id, config);
  started.push(replica);
  return replica;
}

interface LeaderView {
  readonly id: string;
  readonly ballot: Ballot;
}

async function leaderOf(client: SynodClient, members: { id: string; url: string }[], except?: string): Promise<LeaderView> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    for (const member of members) {
      if (member.id === except) continue;
      try {
        const status = (await client.status(member.url)) as { role: string; promised: Ballot };
        if (status.role === "leader") return { id: member.id, ballot: status.promised };
      } catch {
        // not reachable (yet)
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("no leader within 15 s");
}

describe("three real replica processes on loopback", () => {
  it("survive SIGKILL of the leader: a new leader, nothing acknowledged lost, a linearizable history, and the killed replica catches up", async () => {
    const seed = Number(process.env.SYNOD_PROCESS_SEED ?? 7);
    const random = new SeededRandom(seed);
    const members = await Promise.all(["a", "b", "c"].map(async (id) => ({ id, url: `ws://127.0.0.1:${await freePort()}` })));
    const replicas = new Map<string, ReplicaProcess>();
    for (const member of members) replicas.set(member.id, await launch(member.id, members));
    const client = new SynodClient({ urls: members.map((member) => member.url), requestTimeoutMs: 1_000, operationTimeoutMs: 20_000, maxSessions: 8 });
    const history: Operation<KeyValueInput, KeyValueOutput>[] = [];
    const acknowledgedAppends = new Map<string, string[]>();
    let running = true;
    let workers: Promise<void>[] = [];
    try {
      const firstLeader = await leaderOf(client, members);
      workers = Array.from({ length: 6 }, async (_, worker) => {
        for (let index = 0; running; index += 1) {
          const key = `k${random.integer(3)}`;
          const roll = random.integer(3);
          const call = performance.now();
          let input: KeyValueInput;
          let output: KeyValueOutput | undefined;
          try {
            if (roll === 0) {
              input = { kind: "get", key };
              output = { kind: "get", value: await client.read<string>({ key }) };
            } else if (roll === 1) {
              input = { kind: "put", key, value: `p${worker}.${index};` };
              await client.propose({ type: "put", key, value: input.value });
              output = { kind: "put" };
            } else {
              input = { kind: "append", key, value: `a${worker}.${index};` };
              await client.propose({ type: "append", key, value: input.value });
              output = { kind: "append" };
              acknowledgedAppends.set(key, [...(acknowledgedAppends.get(key) ?? []), input.value]);
            }
          } catch {
            // Unknown outcome: the operation stays open to the end of the history.
            history.push({ clientId: worker, input: input!, output: undefined, call, return: Number.POSITIVE_INFINITY });
            continue;
          }
          history.push({ clientId: worker, input, output, call, return: performance.now() });
        }
      });

      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const victim = replicas.get(firstLeader.id) as ReplicaProcess;
      victim.child.kill("SIGKILL");
      expect((await victim.exited).signal).toBe("SIGKILL");
      const killedAt = performance.now();
      // A new leader among the survivors, at a higher ballot (a new epoch).
      const secondLeader = await leaderOf(client, members, firstLeader.id);
      expect(compareBallots(secondLeader.ballot, firstLeader.ballot)).toBeGreaterThan(0);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(history.filter((operation) => operation.output !== undefined && operation.call > killedAt).length, "progress after the kill").toBeGreaterThan(20);
      // The killed replica restarts on its data directory and catches up.
      replicas.set(firstLeader.id, await launch(firstLeader.id, members, true));
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      running = false;
      await Promise.all(workers);

      const completed = history.filter((operation) => operation.output !== undefined).length;
      expect(completed, "the workload made progress").toBeGreaterThan(100);
      const verdict = checkOperations(
        keyValueModel,
        history.filter((operation) => !(operation.output === undefined && operation.input.kind === "get")),
        { budget: { milliseconds: 20_000 } },
      );
      expect(verdict.verdict, `seed ${seed}: ${formatCheckResult(verdict, keyValueModel)}`).toBe("linearizable");

      // Nothing acknowledged was lost: every acknowledged append is in the final value
      // (a later put may overwrite a key, so only appends after the key's last acknowledged put count).
      for (const [key, appends] of acknowledgedAppends) {
        const final = await client.read<string>({ key });
        const lastPut = [...history].reverse().find((operation) => operation.input.kind === "put" && operation.input.key === key);
        const after = appends.filter((value) => lastPut === undefined || history.find((operation) => operation.input.kind === "append" && operation.input.value === value)!.call > lastPut.return);
        for (const value of after) expect(final, `acknowledged append ${value} on ${key}`).toContain(value);
      }

      // Every replica, the restarted one included, reaches the same applied slot.
      const deadline = Date.now() + 15_000;
      let applied: number[] = [];
      while (Date.now() < deadline) {
        applied = await Promise.all(members.map(async (member) => ((await client.status(member.url)) as { appliedThrough: number }).appliedThrough));
        if (applied.every((slot) => slot === applied[0])) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(new Set(applied).size, `applied slots ${applied.join(", ")}`).toBe(1);
    } finally {
      running = false;
      await Promise.all(workers);
      await client.close();
    }
  });

  it("shuts down cleanly on SIGTERM (exit code 0) and restarts on its data", async () => {
    const members = [{ id: "solo", url: `ws://127.0.0.1:${await freePort()}` }];
    const replica = await launch("solo", members);
    const client = new SynodClient({ urls: [members[0]!.url], requestTimeoutMs: 2_000 });
    try {
      await client.propose({ type: "put", key: "durable", value: "yes" });
    } finally {
      await client.close();
    }
    replica.child.kill("SIGTERM");
    expect(await replica.exited).toEqual({ code: 0, signal: null });
    await launch("solo", members, true);
    const again = new SynodClient({ urls: [members[0]!.url], requestTimeoutMs: 2_000 });
    try {
      expect(await again.read({ key: "durable" })).toBe("yes");
    } finally {
      await again.close();
    }
  });
});
