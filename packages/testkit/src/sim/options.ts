import type { FailurePoint, PlantedBug, ReplicaOptions } from "@synod/core";

/** Fault rates and switches for the safety phase. Every draw comes from the run's seed. */
export interface FaultOptions {
  /** Probability that a message is dropped. */
  readonly loss: number;
  /** Probability that a message is delivered twice. */
  readonly duplicate: number;
  /** Message delay is uniform in `[minDelayMs, maxDelayMs]`; the spread reorders messages. */
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  /** Probability that a message is held back much longer, up to `longDelayMaxMs` (stale messages from old leaders). */
  readonly longDelay: number;
  readonly longDelayMaxMs: number;
  /** Mean milliseconds between fault-schedule events (partitions, crashes, stalls, heals). */
  readonly meanFaultIntervalMs: number;
  readonly partitions: boolean;
  readonly crashes: boolean;
  /** A crash may keep a random prefix of the unsynced batch (a torn write) instead of losing it whole. */
  readonly tornWrites: boolean;
  readonly diskStalls: boolean;
  /** Processes may be paused (SIGSTOP, a long GC) and resume later, unaware that time passed. */
  readonly pauses: boolean;
  /**
   * A crashed replica may lose its disk (corrupted or wiped) and restart
   * rebuilding (Paxos Made Live §5.1), one replica at a time, in clusters of
   * three or more, without reconfiguration.
   */
  readonly diskLoss: boolean;
  /** Each replica's clock runs fast or slow by up to this fraction (0.05 = ±5 %). */
  readonly clockDrift: number;
}

export interface SimulationOptions {
  readonly seed: number;
  /** Replicas in the cluster (1, 3, 5 or 7): the bootstrap configuration's voters. */
  readonly replicas: number;
  /**
   * Random configuration changes during the safety phase (add a learner,
   * promote, remove, replace, or a whole new configuration of 1 to 7
   * voters, the leader's seat included), over a pool of replicas two larger
   * than the bootstrap configuration (at most 7).
   */
  readonly reconfigure: boolean;
  /** Concurrent clients, each with its own session, one request at a time. */
  readonly clients: number;
  /** Simulated milliseconds of the safety phase (faults on). */
  readonly safetyMs: number;
  /** Simulated milliseconds of the liveness phase (faults healed; progress required). */
  readonly livenessMs: number;
  /** Simulated milliseconds per replica tick. */
  readonly tickMs: number;
  /** Keys of the KV workload (more keys: smaller partitions for the checker). */
  readonly keys: number;
  /** Snapshot after this many applied slots (0: never). */
  readonly snapshotEverySlots: number;
  /** Log slots kept behind a snapshot; a replica further behind must fetch a snapshot from another. */
  readonly snapshotTailSlots: number;
  readonly faults: FaultOptions;
  readonly replica: Partial<ReplicaOptions>;
  readonly bugs: readonly PlantedBug[];
  /** Crash replicas at this named failure point (Paxos Made Live §6.3) during the safety phase: a fifth of the times one passes it. */
  readonly crashAt: FailurePoint | undefined;
  /** Milliseconds of wall-clock time the linearizability check of one run may take before it counts as a failure. */
  readonly checkBudgetMs: number;
}

export const DEFAULT_FAULTS: FaultOptions = Object.freeze({
  loss: 0.05,
  duplicate: 0.03,
  minDelayMs: 1,
  maxDelayMs: 12,
  longDelay: 0.02,
  longDelayMaxMs: 400,
  meanFaultIntervalMs: 150,
  partitions: true,
  crashes: true,
  tornWrites: true,
  diskStalls: true,
  pauses: true,
  diskLoss: true,
  clockDrift: 0.05,
});

export const DEFAULT_SIMULATION: Omit<SimulationOptions, "seed"> = Object.freeze({
  replicas: 3,
  reconfigure: false,
  clients: 4,
  safetyMs: 2_000,
  livenessMs: 2_500,
  tickMs: 10,
  keys: 3,
  snapshotEverySlots: 40,
  snapshotTailSlots: 20,
  faults: DEFAULT_FAULTS,
  replica: {
    electionTicks: 10,
    heartbeatTicks: 2,
    maxBatchCommands: 8,
    maxInflightSlots: 16,
    maxPromiseEntries: 8,
    maxSuccessEntries: 16,
    alpha: 8,
    // Master leases: shorter than the election timeout (100–200 ms here), and drift bounded as the faults' clocks drift.
    leaseMs: 80,
    maxClockDrift: 0.05,
  },
  bugs: [],
  crashAt: undefined,
  checkBudgetMs: 10_000,
});

/** What a caller may set of `SimulationOptions`: any of it, fault rates and replica options one by one. */
export type SimulationOverrides = Partial<Omit<SimulationOptions, "faults" | "seed">> & { readonly faults?: Partial<FaultOptions> };

export function simulationOptions(overrides: SimulationOverrides & { seed: number }): SimulationOptions {
  return {
    ...DEFAULT_SIMULATION,
    ...overrides,
    faults: { ...DEFAULT_FAULTS, ...overrides.faults },
    replica: { ...DEFAULT_SIMULATION.replica, ...overrides.replica },
  };
}

/** The one-line command that replays a run. */
export function replayCommand(options: SimulationOptions): string {
  const bugs = options.bugs.map((bug) => ` --bug ${bug}`).join("");
  const defaults = DEFAULT_SIMULATION.replica;
  const lease =
    (options.faults.clockDrift !== DEFAULT_FAULTS.clockDrift ? ` --clock-drift ${options.faults.clockDrift}` : "") +
    (options.replica.leaseMs !== defaults.leaseMs ? ` --lease-ms ${options.replica.leaseMs ?? 0}` : "") +
    (options.replica.maxClockDrift !== defaults.maxClockDrift && options.replica.maxClockDrift !== undefined ? ` --max-clock-drift ${options.replica.maxClockDrift}` : "");
  const crashAt = options.crashAt === undefined ? "" : ` --crash-at ${options.crashAt}`;
  return `pnpm sim --seed ${options.seed} --replicas ${options.replicas}${options.reconfigure ? " --reconfigure" : ""}${bugs}${lease}${crashAt}`;
}
