import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { SeededRandom } from "@synod/core";
import { KvClient } from "@synod/app-kv";
import { ServeCluster, bundleScript } from "@synod/testkit/processes";
import { Nemesis, type NemesisTarget, planFaults } from "./nemesis.js";
import { FaultProxy } from "./proxy.js";
import type { CheckResult, FaultWindow, OperationRecord, RoleSample, RunRecord } from "./run-record.js";
import { RegisterWorkload } from "./workloads/registers.js";

export interface CampaignOptions {
  readonly seed: number;
  /** Seconds of load under faults (the run then heals, checks and stops). */
  readonly seconds: number;
  readonly replicas: 3 | 5;
  /** Where the bundled server is built and the replicas keep their data. */
  readonly workDirectory: string;
  /** The command that replays this run (its seed included), for the report. */
  readonly replay: string;
  /** Known protocol bugs planted in every replica (`--plant-bug`), to show that the campaign catches them. */
  readonly bugs?: readonly string[];
}

const WORKERS = 6;
const KEYS = ["r0", "r1", "r2", "r3", "r4"];
const CHECK_BUDGET_MS = 20_000;
const PROGRESS_WITHIN_MS = 10_000;

let bundled: Promise<string> | undefined;

/** `synod-kv`'s CLI, bundled once per process, beside this package's own dependencies (its native helpers stay external). */
function kvServer(): Promise<string> {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve("@synod/app-kv/package.json"));
  const here = dirname(require.resolve("@synod/chaos/package.json"));
  bundled ??= bundleScript(join(root, "src", "cli.ts"), join(here, ".build", "synod-kv.mjs"));
  return bundled;
}

/**
 * One run: an app-kv cluster of real processes, each behind a fault proxy
 * every peer and client reaches it through; register workers record every
 * operation while the nemesis carries out the seeded fault plan; then every
 * fault heals, a final read of every key joins the history, and the checks
 * run: per-key linearizability, the replicas' convergence, and that no
 * consistency check alarmed.
 */
export async function runCampaign(options: CampaignOptions): Promise<RunRecord> {
  mkdirSync(options.workDirectory, { recursive: true });
  const random = new SeededRandom(options.seed);
  const loadMs = options.seconds * 1_000;
  const plan = planFaults(random.fork(), loadMs);
  const began = performance.now();
  const clock = () => performance.now() - began;
  const proxies = new Map<string, FaultProxy>();
  const proxyRandom = random.fork();
  const cluster = new ServeCluster({
    script: await kvServer(),
    size: options.replicas,
    tickMs: 20,
    flags: ["--check-every-ms", "500", ...(options.bugs ?? []).flatMap((bug) => ["--plant-bug", bug])],
    advertise: async (id, listenPort) => {
      const proxy = new FaultProxy({ target: { host: "127.0.0.1", port: listenPort }, seed: proxyRandom.integer(2 ** 31) });
      proxies.set(id, proxy);
      return `ws://127.0.0.1:${await proxy.listen()}`;
    },
  });
  const status = new KvClient({ urls: ["ws://127.0.0.1:1"], requestTimeoutMs: 300 });
  const paused = new Set<string>();
  const roles: RoleSample[] = [];
  const workload = new RegisterWorkload(KEYS, clock);
  const clients: KvClient[] = [];
  let running = true;
  try {
    await cluster.boot(() => cluster.leaderBy((url) => status.replicaStatus(url) as never, 30_000));
    const lastRoles = new Map<string, string>();
    const rebuildingDown = new Set<string>();
    const target = nemesisTarget(cluster, proxies, paused, status, rebuildingDown);
    const nemesis = new Nemesis(target, clock);
    const sampler = sampleRoles(cluster, status, paused, roles, lastRoles, rebuildingDown, clock, () => running);
    for (let worker = 0; worker < WORKERS; worker += 1) clients.push(new KvClient({ urls: cluster.urls, requestTimeoutMs: 500, operationTimeoutMs: worker % 2 === 0 ? 5_000 : 1_500 }));
    const workers = clients.map((client, worker) => workload.run(worker, client, random.fork(), () => running));
    const loadStartedAt = clock();
    const faults = nemesis.run(plan, loadStartedAt);
    await Promise.all([faults, sleep(loadMs)]);
    nemesis.stop();
    await faults;
    // Heal everything, stop the load, and let the cluster settle.
    target.cut(undefined);
    target.slow(undefined);
    for (const id of [...paused]) target.resume(id);
    for (const replica of cluster.replicas) if (replica.child === undefined) await cluster.restart(replica.id);
    running = false;
    await Promise.all(workers);
    const healed = await cluster.leaderBy((url) => status.replicaStatus(url) as never, 30_000).then(
      (leader): CheckResult => ({ name: "a leader once every fault healed", passed: true, detail: `${leader} leads` }),
      (error: unknown): CheckResult => ({ name: "a leader once every fault healed", passed: false, detail: (error as Error).message }),
    );
    if (healed.passed) {
      const reader = new KvClient({ urls: cluster.urls, requestTimeoutMs: 1_000, operationTimeoutMs: 15_000 });
      clients.push(reader);
      await workload.finalReads(reader);
    }
    await sampler;

    const checks: CheckResult[] = [
      healed,...workload.check(CHECK_BUDGET_MS), progressAfterFaults(workload.records, nemesis.windows), await convergence(cluster, clients), noAlarms(cluster), noFatalErrors(cluster)];
    return {
      seed: options.seed,
      system: `app-kv, ${options.replicas} replicas${options.bugs === undefined || options.bugs.length === 0 ? "" : `, planted: ${options.bugs.join(", ")}`}`,
      durationMs: clock(),
      operations: workload.records,
      faults: nemesis.windows,
      roles,
      checks,
      replay: options.replay,
    };
  } finally {
    running = false;
    await Promise.all(clients.map((client) => client.close()));
    await status.close();
    await cluster.close();
    await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
  }
}

function nemesisTarget(cluster: ServeCluster, proxies: ReadonlyMap<string, FaultProxy>, paused: Set<string>, status: KvClient, rebuildingDown: ReadonlySet<string>): NemesisTarget {
  const view = (url: string) => status.replicaStatus(url).catch(() => undefined) as Promise<{ role?: string; leader?: string; rebuilding?: boolean } | undefined>;
  const ids = cluster.replicas.map((replica) => replica.id);
  const proxy = (id: string) => proxies.get(id) as FaultProxy;
  return {
    ids,
    leader: async () => {
      for (const replica of cluster.replicas) {
        if (replica.child === undefined || paused.has(replica.id)) continue;
        const view = (await status.replicaStatus(replica.url).catch(() => undefined)) as { role?: string; leader?: string } | undefined;
        if (view?.leader !== undefined) return view.leader;
      }
      return undefined;
    },
    kill: (id) => {
      paused.delete(id);
      return cluster.kill(id);
    },
    // Back only once it answers: the next fault must see what state it came back in (rebuilding, say).
    restart: async (id) => {
      await cluster.restart(id);
      const url = cluster.replica(id).url;
      for (let attempt = 0; attempt < 50 && (await view(url)) === undefined; attempt += 1) await sleep(100);
    },
    pause: (id) => {
      cluster.signal(id, "SIGSTOP");
      paused.add(id);
    },
    resume: (id) => {
      if (!paused.delete(id)) return;
      if (cluster.replica(id).child !== undefined) cluster.signal(id, "SIGCONT");
    },
    dataDirectory: (id) => cluster.dataDirectory(id),
    rebuilding: async () => {
      if (rebuildingDown.size > 0) return true;
      const live = cluster.replicas.filter((replica) => replica.child !== undefined && !paused.has(replica.id));
      return (await Promise.all(live.map((replica) => view(replica.url)))).some((answer) => answer?.rebuilding === true);
    },
    wipe: (id) => cluster.wipe(id),
    cut: (links) => {
      for (const id of ids) proxy(id).clearAll();
      for (const [from, to] of links ?? []) proxy(to).setLink(from, { cut: true });
    },
    slow: (links) => {
      for (const id of ids) proxy(id).clearAll();
      for (const [from, to] of links ?? []) proxy(to).setLink(from, { delayMs: 5, jitterMs: 20, reorder: 0.1, duplicate: 0.05, drop: 0.05 });
    },
  };
}

/** Each replica's role every 200 ms: what the role timeline draws. */
async function sampleRoles(
  cluster: ServeCluster,
  status: KvClient,
  paused: ReadonlySet<string>,
  roles: RoleSample[],
  last: Map<string, string>,
  rebuildingDown: Set<string>,
  clock: () => number,
  running: () => boolean,
): Promise<void> {
  while (running()) {
    await Promise.all(
      cluster.replicas.map(async (replica) => {
        let role: string;
        if (replica.child === undefined) role = "down";
        else if (paused.has(replica.id)) role = "paused";
        else {
          const view = (await status.replicaStatus(replica.url).catch(() => undefined)) as { role?: string; rebuilding?: boolean } | undefined;
          role = view === undefined ? "unreachable" : view.rebuilding === true ? "rebuilding" : (view.role ?? "unknown");
        }
        const previous = last.get(replica.id);
        if (previous === role) return;
        // Down or unreachable after rebuilding, it restarts rebuilding (the mark is durable).
        if (role === "down" || role === "unreachable") {
          if (previous === "rebuilding") rebuildingDown.add(replica.id);
        } else if (role !== "paused") rebuildingDown.delete(replica.id);
        last.set(replica.id, role);
        roles.push({ node: replica.id, time: clock(), role });
      }),
    );
    await sleep(200);
  }
}

/** Within `PROGRESS_WITHIN_MS` of every fault healing, some operation that began after it succeeded: the cluster recovers on its own. */
function progressAfterFaults(operations: readonly OperationRecord[], faults: readonly FaultWindow[]): CheckResult {
  const starts = operations.filter((operation) => operation.outcome === "ok").map((operation) => operation.start);
  const stuck = faults.filter((fault) => !starts.some((start) => start >= fault.end && start <= fault.end + PROGRESS_WITHIN_MS));
  const passed = stuck.length === 0;
  return {
    name: `progress within ${PROGRESS_WITHIN_MS / 1_000} s of every fault healing`,
    passed,
    detail: passed ? `${faults.length} faults, each followed by successful operations` : stuck.map((fault) => `no operation succeeded within ${PROGRESS_WITHIN_MS / 1_000} s after ${fault.kind} ${fault.target} healed at ${(fault.end / 1_000).toFixed(1)} s`).join("\n"),
  };
}

/** Every replica, read alone and locally, holds the same keys and values. */
async function convergence(cluster: ServeCluster, clients: KvClient[]): Promise<CheckResult> {
  const local = cluster.urls.map((url) => new KvClient({ urls: [url], requestTimeoutMs: 1_000, operationTimeoutMs: 3_000 }));
  clients.push(...local);
  const view = async () =>
    Promise.all(
      local.map(async (client) => {
        try {
          const range = await client.range({ prefix: "r" }, { serializable: true });
          return JSON.stringify(range.kvs.map((kv) => [kv.key, kv.value, kv.modRevision]));
        } catch (error) {
          return `unreachable: ${(error as Error).message}`;
        }
      }),
    );
  const deadline = performance.now() + 20_000;
  let views = await view();
  while (new Set(views).size !== 1 && performance.now() < deadline) {
    await sleep(200);
    views = await view();
  }
  const passed = new Set(views).size === 1;
  return { name: "replicas converge", passed, detail: passed ? "every replica holds the same keys, values and revisions" : views.map((text, index) => `${cluster.replicas[index]?.id}: ${text}`).join("\n") };
}

/** Lines of every replica's log that contain `text`, each prefixed with the replica. */
function logLinesWith(cluster: ServeCluster, text: string): string[] {
  return cluster.replicas.flatMap((replica) =>
    replica.logs
      .join("")
      .split("\n")
      .filter((line) => line.includes(text))
      .map((line) => `${replica.id}: ${line}`),
  );
}

/** No consistency check alarmed: a divergence would have been named in some replica's log. */
function noAlarms(cluster: ServeCluster): CheckResult {
  const alarms = logLinesWith(cluster, '"consistency check failed');
  return { name: "no consistency check alarmed", passed: alarms.length === 0, detail: alarms.length === 0 ? "no replica reported a divergence" : alarms.join("\n") };
}

/** No replica stopped on an error it cannot go on after (a broken invariant, a failed disk). */
function noFatalErrors(cluster: ServeCluster): CheckResult {
  const fatal = logLinesWith(cluster, '"replica stopped on a fatal error"');
  return { name: "no replica stopped on a fatal error", passed: fatal.length === 0, detail: fatal.length === 0 ? "every replica ran to the end" : fatal.join("\n") };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
