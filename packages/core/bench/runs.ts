/**
 * One measured repetition of each benchmark mode. Both start a fresh
 * 3-replica cluster, elect a leader and open one client session outside the
 * measured interval, then keep `window` put commands in flight at the leader
 * until `commands` of them have been applied there.
 */
import { MemoryStorage } from "../src/driver/memory-storage.js";
import { MemoryNetwork } from "../src/driver/memory-transport.js";
import { SynodNode } from "../src/driver/node.js";
import type { AppliedCommand } from "../src/host.js";
import { SeededRandom } from "../src/random.js";
import type { ReplicaOptions } from "../src/replica.js";
import { type Accounting, CoreCluster } from "./core-cluster.js";
import { KvMachine, type PutOp, openSession, putCommand } from "./kv.js";

export interface RunConfig {
  readonly mode: "core" | "driver";
  readonly label: string;
  readonly options: Partial<ReplicaOptions>;
  /** Commands to apply at the leader. */
  readonly commands: number;
  /** Commands proposed and not yet applied at the leader. */
  readonly window: number;
  /** A rep stops early (and says so) after this long. */
  readonly limitMs: number;
}

export interface RepResult {
  readonly commands: number;
  readonly wallMs: number;
  /** Process user + system CPU time over the measured interval. */
  readonly cpuUs: number;
  /** Replica-to-replica messages delivered during the interval. */
  readonly messages: number;
  /** Slots applied at the leader during the interval. */
  readonly slots: number;
  /** Stopped at `limitMs` before `commands` were applied. */
  readonly truncated: boolean;
}

/** Core mode ticks every replica once per this many commands applied (≈ 50 ms at 200 000/s). */
export const COMMANDS_PER_TICK = 10_000;

interface Mark {
  readonly wall: number;
  readonly cpu: NodeJS.CpuUsage;
}

const mark = (): Mark => ({ wall: performance.now(), cpu: process.cpuUsage() });

function since(start: Mark): { wallMs: number; cpuUs: number } {
  const cpu = process.cpuUsage(start.cpu);
  return { wallMs: performance.now() - start.wall, cpuUs: cpu.user + cpu.system };
}

function checkOutcomes(applied: readonly AppliedCommand[]): void {
  for (const command of applied) {
    if (!command.outcome.ok || command.duplicate) throw new Error(`command ${command.command.seq} failed: ${JSON.stringify(command.outcome)}`);
  }
}

/**
 * Core mode: the three Replicas and hosts in one synchronous loop. Each round
 * tops the leader's proposals up to `window`, processes every replica's
 * Readies and delivers the messages sent. With `accounting`, also sizes every
 * message and persisted record (slow: not for timing).
 */
export function coreRep(config: RunConfig, seed: number, accounting?: Accounting): RepResult {
  const cluster = new CoreCluster(config.options, seed);
  const leaderNode = cluster.elect();
  const session = "bench";
  cluster.proposeAndWait(openSession(session));
  const leader = leaderNode.replica;
  const target = config.commands;
  let proposed = 0;
  let applied = 0;
  cluster.onLeaderApplied = (commands) => {
    checkOutcomes(commands);
    applied += commands.length;
  };
  cluster.accounting = accounting;
  const deliveredBefore = cluster.delivered;
  const slotBefore = leaderNode.host.appliedThrough;
  let nextTickAt = COMMANDS_PER_TICK;
  let truncated = false;
  const start = mark();
  while (applied < target) {
    while (proposed - applied < config.window && proposed < target) {
      proposed += 1;
      leader.propose(putCommand(session, proposed));
    }
    cluster.round();
    while (applied >= nextTickAt) {
      cluster.tickAll();
      nextTickAt += COMMANDS_PER_TICK;
    }
    if ((cluster.rounds & 63) === 0 && performance.now() - start.wall > config.limitMs) {
      truncated = true;
      break;
    }
  }
  const { wallMs, cpuUs } = since(start);
  const messages = cluster.delivered - deliveredBefore;
  const slots = leaderNode.host.appliedThrough - slotBefore;
  // Untimed: let the followers catch up, then check that every replica applied the same.
  cluster.accounting = undefined;
  for (let i = 0; i < 4; i += 1) {
    cluster.tickAll();
    cluster.settle();
  }
  const digests = new Set(cluster.nodes.map((node) => node.host.digest()));
  if (digests.size !== 1) throw new Error(`replicas diverged: ${[...digests].join(" / ")}`);
  const expected = `${proposed}:${Math.min(proposed, 1024)}`;
  if (leaderNode.machine.digest() !== expected) throw new Error(`leader state ${leaderNode.machine.digest()}, expected ${expected}`);
  return { commands: applied, wallMs, cpuUs, messages, slots, truncated };
}

type KvNode = SynodNode<PutOp, never, number, string, string | undefined>;

/** Driver mode: three SynodNodes over a MemoryNetwork and MemoryStorages, `window` concurrent `submit`s at the leader. */
export async function driverRep(config: RunConfig, seed: number): Promise<RepResult> {
  const network = new MemoryNetwork();
  const voters = ["a", "b", "c"];
  const random = new SeededRandom(seed);
  const nodes: KvNode[] = voters.map(
    (id) =>
      new SynodNode({
        id,
        voters,
        storage: new MemoryStorage(),
        transport: network.transport(id),
        stateMachine: new KvMachine(),
        // Elections in 100–200 ms; heartbeats every 20 ms during the run.
        tickMs: 10,
        random: random.fork(),
        replica: config.options,
        // Snapshots and compaction at the defaults (every 10 000 slots, 1 000 kept).
      }),
  );
  await Promise.all(nodes.map((node) => node.start()));
  try {
    const deadline = performance.now() + 5_000;
    let found: KvNode | undefined;
    while ((found = nodes.find((node) => node.status().role === "leader")) === undefined) {
      if (performance.now() > deadline) throw new Error("no leader after 5 s");
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const leader = found;
    const session = "bench";
    const opened = await leader.submit(openSession(session));
    if (!opened.ok) throw new Error(`open-session failed: ${JSON.stringify(opened)}`);
    const target = config.commands;
    const deliveredBefore = network.delivered;
    const slotBefore = leader.status().appliedThrough;
    let next = 1;
    let done = 0;
    let stopping = false;
    const start = mark();
    await new Promise<void>((resolve, reject) => {
      const launch = (): void => {
        const seq = next;
        next += 1;
        leader.submit(putCommand(session, seq)).then((outcome) => {
          if (!outcome.ok) return reject(new Error(`command ${seq} failed: ${JSON.stringify(outcome)}`));
          done += 1;
          if (!stopping && (done & 1023) === 0 && performance.now() - start.wall > config.limitMs) stopping = true;
          if (next <= target && !stopping) launch();
          else if (done === next - 1) resolve();
        }, reject);
      };
      while (next <= target && next <= config.window) launch();
    });
    const { wallMs, cpuUs } = since(start);
    if (leader.status().role !== "leader") throw new Error("leadership changed during the run");
    return {
      commands: done,
      wallMs,
      cpuUs,
      messages: network.delivered - deliveredBefore,
      slots: leader.status().appliedThrough - slotBefore,
      truncated: stopping && done < target,
    };
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
  }
}
