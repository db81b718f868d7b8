import { mkdirSync } from "node:fs";
import { PLANTED_BUGS, SeededRandom } from "@synod/core";
import { SynodClient } from "@synod/transport-ws";
import { ServeCluster, type ServeReplicaStatus } from "@synod/testkit/processes";
import { type FaultKind, Nemesis, type NemesisTarget, RECOVERY_WAIT_MS, planFaults } from "./nemesis.js";
import { FaultProxy } from "./proxy.js";
import { RebuildWatch } from "./rebuild-watch.js";
import type { CheckResult, FaultWindow, OperationRecord, RoleSample, RunRecord } from "./run-record.js";
import { SERVICES, type ServiceName, type ServiceUnderTest } from "./services.js";

export interface CampaignOptions {
  readonly seed: number;
  /** Seconds of load under faults (the run then heals, checks and stops). */
  readonly seconds: number;
  readonly replicas: 3 | 5;
  /** The service under test (default `kv`). */
  readonly service?: ServiceName;
  /** Where the replicas keep their data. */
  readonly workDirectory: string;
  /** The command that replays this run (its seed included), for the report. */
  readonly replay: string;
  /** Known bugs planted in every replica, to show that the campaign catches them: protocol bugs (`--plant-bug`) or the service's own (`--plant-app-bug`). */
  readonly bugs?: readonly string[];
  /** The fault kinds to draw from (default: every kind). */
  readonly faults?: readonly FaultKind[];
}

const CHECK_BUDGET_MS = 60_000;
const PROGRESS_WITHIN_MS = RECOVERY_WAIT_MS;
/** Load goes on this long after every fault healed: the cluster must serve it (Jepsen's recovery phase). */
const RECOVERY_MS = 5_000;

/** A replica's status as the campaign reads it. */
type ReplicaView = ServeReplicaStatus & { readonly rebuilding?: boolean; readonly firstUnchosen?: number; readonly configEffectiveSlot?: number };

/**
 * One run: a cluster of the service's real processes, each behind a fault
 * proxy every peer and client reaches it through; the service's workloads
 * record every operation while the nemesis carries out the seeded fault
 * plan; then every fault heals, the workloads' final reads join their
 * histories, and the checks run: each workload's own (linearizability,
 * totals, lock safety), progress after every fault, the replicas'
 * convergence, and that no consistency check alarmed and no replica failed.
 */
export async function runCampaign(options: CampaignOptions): Promise<RunRecord> {
  mkdirSync(options.workDirectory, { recursive: true });
  const service: ServiceUnderTest = SERVICES[options.service ?? "kv"];
  const random = new SeededRandom(options.seed);
  const loadMs = options.seconds * 1_000;
  const plan = planFaults(random.fork(), loadMs, options.faults);
  const began = performance.now();
  const clock = () => performance.now() - began;
  const proxies = new Map<string, FaultProxy>();
  const proxyRandom = random.fork();
  const workloadRandom = random.fork();
  const cluster = new ServeCluster({
    script: await service.script(),
    size: options.replicas,
    tickMs: 20,
    flags: ["--check-every-ms", "500", "--durability-journal", ...(options.bugs ?? []).flatMap((bug) => [(PLANTED_BUGS as readonly string[]).includes(bug) ? "--plant-bug" : "--plant-app-bug", bug])],
    advertise: async (id, listenPort) => {
      const proxy = new FaultProxy({ target: { host: "127.0.0.1", port: listenPort }, seed: proxyRandom.integer(2 ** 31) });
      proxies.set(id, proxy);
      return `ws://127.0.0.1:${await proxy.listen()}`;
    },
  });
  const status = new SynodClient({ urls: ["ws://127.0.0.1:1"], requestTimeoutMs: 300 });
  const view = (url: string) => status.status(url).catch(() => undefined) as Promise<ReplicaView | undefined>;
  const paused = new Set<string>();
  const roles: RoleSample[] = [];
  let workloads: ReturnType<ServiceUnderTest["workloads"]> = [];
  let admin: SynodClient | undefined;
  let running = true;
  try {
    await cluster.boot(() => cluster.leaderBy(view, 30_000));
    const lastRoles = new Map<string, string>();
    const rebuilds = new RebuildWatch(clock);
    // Patient: a change waits for a newcomer to catch up, and a retried request would find the first under way.
    admin = new SynodClient({ urls: cluster.urls, requestTimeoutMs: 70_000, operationTimeoutMs: 90_000 });
    const target = nemesisTarget(cluster, proxies, paused, view, admin, rebuilds, (since) => workloads.some((workload) => succeededSince(workload.records, since)));
    const nemesis = new Nemesis(target, clock);
    const sampler = sampleRoles(cluster, view, paused, roles, lastRoles, rebuilds, clock, () => running);
    workloads = service.workloads({ urls: cluster.urls, clock });
    // Settled from the start: a workload that throws (a bug of its own) must not take the process down
    // before the cluster is stopped; its error is the run's, once the faults are done.
    const load = Promise.all(workloads.map((workload) => workload.run(workloadRandom.fork(), () => running))).then(
      () => undefined,
      (error: unknown) => error,
    );
    const loadStartedAt = clock();
    const faults = nemesis.run(plan, loadStartedAt, loadStartedAt + loadMs);
    await Promise.all([faults, sleep(loadMs)]);
    nemesis.stop();
    await faults;
    // Heal everything, stop the load, and let the cluster settle.
    target.cut(undefined);
    target.slow(undefined);
    for (const id of [...paused]) target.resume(id);
    for (const replica of cluster.replicas) if (replica.child === undefined) await cluster.restart(replica.id);
    await sleep(RECOVERY_MS);
    running = false;
    const broken = await load;
    if (broken !== undefined) throw broken;
    const healed = await cluster.leaderBy(view, 30_000).then(
      (leader): CheckResult => ({ name: "a leader once every fault healed", passed: true, detail: `${leader} leads` }),
      (error: unknown): CheckResult => ({ name: "a leader once every fault healed", passed: false, detail: (error as Error).message }),
    );
    if (healed.passed) for (const workload of workloads) await workload.finish();
    await sampler;

    const operations = workloads.flatMap((workload) => workload.records);
    const checks: CheckResult[] = [
      healed,
      ...workloads.flatMap((workload) => workload.check(CHECK_BUDGET_MS / workloads.length)),
      progressAfterFaults(operations, nemesis.windows),
      membershipChanges(nemesis.windows),
      await convergence(cluster, service),
      noAlarms(cluster),
      noFatalErrors(cluster),
    ];
    return {
      seed: options.seed,
      system: `${service.title}, ${options.replicas} replicas${options.bugs === undefined || options.bugs.length === 0 ? "" : `, planted: ${options.bugs.join(", ")}`}`,
      durationMs: clock(),
      operations: [...operations].sort((x, y) => x.start - y.start),
      faults: nemesis.windows,
      roles,
      checks,
      replay: options.replay,
    };
  } finally {
    running = false;
    await Promise.all(workloads.map((workload) => workload.close()));
    await status.close();
    await admin?.close();
    await cluster.close();
    await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
  }
}

function nemesisTarget(
  cluster: ServeCluster,
  proxies: ReadonlyMap<string, FaultProxy>,
  paused: Set<string>,
  view: (url: string) => Promise<ReplicaView | undefined>,
  admin: SynodClient,
  rebuilds: RebuildWatch,
  progressed: (since: number) => boolean,
): NemesisTarget {
  const ids = cluster.replicas.map((replica) => replica.id);
  const proxy = (id: string) => proxies.get(id) as FaultProxy;
  const members = (request: Parameters<SynodClient["members"]>[0]) => admin.members(request, { signal: AbortSignal.timeout(90_000) });
  return {
    ids,
    progressed,
    leader: async () => {
      for (const replica of cluster.replicas) {
        if (replica.child === undefined || paused.has(replica.id)) continue;
        const seen = await view(replica.url);
        if (seen?.leader !== undefined) return seen.leader;
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
      if (rebuilds.mayBeRebuilding()) return true;
      const live = cluster.replicas.filter((replica) => replica.child !== undefined && !paused.has(replica.id));
      const answers = await Promise.all(
        live.map(async (replica) => {
          // A replica busy rebuilding may be slow to answer: asked again (one seen rebuilding is a suspect already).
          for (let attempt = 0; attempt < 3; attempt += 1) {
            const seen = await view(replica.url);
            if (seen !== undefined) return seen.rebuilding === true;
          }
          return false;
        }),
      );
      return answers.some(Boolean);
    },
    wipe: (id) => cluster.wipe(id),
    damaged: (id) => rebuilds.damaged(id),
    cut: (links) => {
      for (const id of ids) proxy(id).clearAll();
      for (const [from, to] of links ?? []) proxy(to).setLink(from, { cut: true });
    },
    slow: (links) => {
      for (const id of ids) proxy(id).clearAll();
      for (const [from, to] of links ?? []) proxy(to).setLink(from, { delayMs: 5, jitterMs: 20, reorder: 0.1, duplicate: 0.05, drop: 0.05 });
    },
    removeMember: async (id) => {
      await members({ action: "remove", id });
    },
    // A replica taken out comes back as an operator brings back a machine: its disk wiped, started empty
    // with --join, added (as a learner that catches up, then promoted) at its old address.
    rejoin: async (id) => {
      await cluster.kill(id);
      paused.delete(id);
      cluster.wipe(id);
      await cluster.join(id);
      // An earlier request's change may still be under way (a retry after a lost answer): wait for it.
      // (The server waits up to 60 s for the newcomer to catch up; the client waits longer.)
      for (let attempt = 1; ; attempt += 1) {
        try {
          await members({ action: "add", id, endpoint: cluster.replica(id).url });
          break;
        } catch (error) {
          if ((error as { code?: unknown }).code !== "CHANGE_IN_PROGRESS" || attempt === 120) throw error;
          await sleep(500);
        }
      }
      // Until every replica has passed the slot the new configuration governs from, a leader elected
      // meanwhile would also need a quorum of the smaller one (whose every member is then essential).
      // Judged against the newest configuration any replica knows, so one that has not learned it is not settled.
      const settled = async () => {
        const views = await Promise.all(cluster.replicas.filter((replica) => replica.child !== undefined && !paused.has(replica.id)).map((replica) => view(replica.url)));
        const newest = Math.max(0, ...views.map((seen) => seen?.configEffectiveSlot ?? 0));
        return views.every((seen) => seen !== undefined && (seen.firstUnchosen ?? 0) > newest);
      };
      for (let attempt = 0; !(await settled()); attempt += 1) {
        if (attempt === 150) throw Object.assign(new Error("added, but the replicas did not all pass the new configuration's first slot within 15 s"), { code: "NOT_SETTLED" });
        await sleep(100);
      }
    },
  };
}

/** Each replica's role every 200 ms: what the role timeline draws. */
async function sampleRoles(
  cluster: ServeCluster,
  view: (url: string) => Promise<ReplicaView | undefined>,
  paused: ReadonlySet<string>,
  roles: RoleSample[],
  last: Map<string, string>,
  rebuilds: RebuildWatch,
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
          const seen = await view(replica.url);
          role = seen === undefined ? "unreachable" : seen.rebuilding === true ? "rebuilding" : (seen.role ?? "unknown");
        }
        rebuilds.note(replica.id, role);
        if (last.get(replica.id) === role) return;
        last.set(replica.id, role);
        roles.push({ node: replica.id, time: clock(), role });
      }),
    );
    await sleep(200);
  }
}

/** Whether an operation that began at `since` or later succeeded (records come in the order operations ended: look back from the newest). */
function succeededSince(records: readonly OperationRecord[], since: number): boolean {
  for (let index = records.length - 1; index >= 0; index -= 1) {
    const record = records[index] as OperationRecord;
    if (record.outcome === "ok" && record.local !== true && record.start >= since) return true;
    // No operation lasts a minute: older records cannot have begun after `since`.
    if (record.end !== undefined && record.end < since - 60_000) return false;
  }
  return false;
}

/** Within `PROGRESS_WITHIN_MS` of every fault healing, some operation that began after it succeeded: the cluster recovers on its own. */
function progressAfterFaults(operations: readonly OperationRecord[], faults: readonly FaultWindow[]): CheckResult {
  const starts = operations.filter((operation) => operation.outcome === "ok" && operation.local !== true).map((operation) => operation.start);
  const stuck = faults.filter((fault) => !starts.some((start) => start >= fault.end && start <= fault.end + PROGRESS_WITHIN_MS));
  const passed = stuck.length === 0;
  return {
    name: `progress within ${PROGRESS_WITHIN_MS / 1_000} s of every fault healing`,
    passed,
    detail: passed ? `${faults.length} faults, each followed by successful operations` : stuck.map((fault) => `no operation succeeded within ${PROGRESS_WITHIN_MS / 1_000} s after ${fault.kind} ${fault.target} healed at ${(fault.end / 1_000).toFixed(1)} s`).join("\n"),
  };
}

/** Every membership change the nemesis asked for went through: a replica taken out was taken out, and came back. */
function membershipChanges(faults: readonly FaultWindow[]): CheckResult {
  const changes = faults.filter((fault) => fault.kind === "membership");
  const refused = changes.filter((fault) => /\((not removed|not added back): /.test(fault.target));
  return {
    name: "membership changes went through",
    passed: refused.length === 0,
    detail: refused.length === 0 ? `${changes.length} replicas taken out of the configuration and brought back` : refused.map((fault) => `at ${(fault.start / 1_000).toFixed(1)} s: ${fault.target}`).join("\n"),
  };
}

/** Every replica, read alone and locally, holds the same state (waiting up to 20 s for the laggards to apply). */
async function convergence(cluster: ServeCluster, service: ServiceUnderTest): Promise<CheckResult> {
  const views = () => Promise.all(cluster.urls.map((url) => service.localState(url).catch((error: unknown) => `unreachable: ${(error as Error).message}`)));
  const deadline = performance.now() + 20_000;
  let seen = await views();
  while (new Set(seen).size !== 1 && performance.now() < deadline) {
    await sleep(200);
    seen = await views();
  }
  const passed = new Set(seen).size === 1;
  return {
    name: "replicas converge",
    passed,
    detail: passed ? `every replica holds the same state (${(seen[0] ?? "").length} bytes rendered)` : seen.map((text, index) => `${cluster.replicas[index]?.id}: ${text.slice(0, 2_000)}`).join("\n"),
  };
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
