/**
 * The lock load both systems are driven with: `clients` closed-loop workers,
 * each with its own session (Synod) or leases (etcd) and, unless the client
 * object is shared, its own connections, doing acquire + release in a loop; a
 * warm-up, then a fixed measured window in which throughput, latency and CPU
 * are taken.
 *
 * The window is [start, end]; an acquire + release counts (and its latency is
 * a sample) when its release is answered inside the window. CPU of the bench
 * process (the clients) and of the three servers is read at both ends of it,
 * with the KV benchmark's /proc helpers.
 */
import { Samples } from "@synod/testkit";
import { withTimeout } from "../../app-kv/bench/load.js";
import { clientCpuMicros, machineBusyMicros, serversCpuMicros, sleep } from "../../app-kv/bench/processes.js";

export type SystemName = "etcd" | "synod";

/** One client of the lock service, as one application process would hold it. */
export interface LockWorker {
  /**
   * Acquires `lock`, waiting for it however the system waits, and releases
   * it. Resolves with the acquire attempts that were refused on the way
   * (etcd's lock is a try-lock that the worker retries; Synod queues, so 0).
   */
  cycle(lock: string): Promise<number>;
}

/** Workers opened together, and how to close them all (their sessions, then their clients). */
export interface Workers {
  readonly workers: readonly LockWorker[];
  close(): Promise<void>;
}

/** Whether one lock's grants followed its queue, read from the service's own record of them. */
export interface FifoCheck {
  /** Grants seen, in the order they were made. */
  readonly grants: number;
  /** Grants to the head of the queue (the rest found the lock free and nobody waiting). */
  readonly fromQueue: number;
  /** Grants that went to someone other than the head of a non-empty queue. */
  readonly violations: number;
  readonly firstViolation: string | undefined;
  /** Set when the order could not be read in full (then nothing is claimed). */
  readonly unknown: string | undefined;
}

/** A running 3-node cluster of one system. */
export interface LockCluster {
  readonly name: SystemName;
  /** The three server processes, whose CPU is summed. */
  readonly serverPids: readonly number[];
  /**
   * Opens `count` workers, each with its own session (Synod, TTL 10 s) or
   * leases (etcd, TTL 10 s): over a client object each (its own connections),
   * or with `shareClient` over one client object (one connection per server).
   */
  openWorkers(count: number, shareClient: boolean): Promise<Workers>;
  /**
   * Where the record of `lock`'s grants stands now, and later whether they
   * were FIFO since then; undefined for a system without a queue.
   */
  readonly fifo?: {
    mark(lock: string): Promise<number>;
    check(lock: string, from: number): Promise<FifoCheck>;
  };
  stop(): Promise<void>;
}

export type WorkloadKind = "own" | "one";

export interface Workload {
  /** `own`: each worker on a lock of its own; `one`: every worker on the same lock. */
  readonly kind: WorkloadKind;
  readonly clients: number;
}

export function workloadName(workload: Workload): string {
  return workload.kind === "own" ? `${workload.clients} clients, ${workload.clients} locks` : `${workload.clients} clients, 1 lock`;
}

export interface WorkloadResult {
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU of the bench process per counted acquire + release. */
  readonly clientCpuMicrosPerOp: number;
  /** CPU of the three servers together per counted acquire + release. */
  readonly serversCpuMicrosPerOp: number;
  /** Cores that other processes kept busy during the window, on average: above ~0.2 the figures are disturbed. */
  readonly otherCores: number;
  /** Refused acquire attempts per counted acquire + release (etcd's retried try-lock; 0 for Synod). */
  readonly refusedPerOp: number;
  /** The fewest and most cycles one worker completed in the window: how evenly the lock went round. */
  readonly perWorkerMin: number;
  readonly perWorkerMax: number;
  /** Failed cycles (thrown), at any time. */
  readonly errors: number;
  readonly firstError: string | undefined;
  readonly drainTimedOut: boolean;
  /** `one` on a system with a queue: whether its grants were FIFO over the whole workload (warm-up included). */
  readonly fifo: FifoCheck | undefined;
}

export interface RunOptions {
  /** All workers over one client object rather than one each. */
  readonly shareClient: boolean;
  readonly warmupMs: number;
  readonly measureMs: number;
  /** A lock-name prefix no other workload has used. */
  readonly prefix: string;
}

const MAX_ERRORS = 200;
const DRAIN_TIMEOUT_MS = 15_000;
const SETUP_TIMEOUT_MS = 60_000;

interface Window {
  stopping: boolean;
  start: number;
  end: number;
}

/** One workload against one cluster, on workers opened for it and closed after. */
export async function runWorkload(cluster: LockCluster, workload: Workload, options: RunOptions): Promise<WorkloadResult> {
  const opened = await withTimeout(cluster.openWorkers(workload.clients, options.shareClient), SETUP_TIMEOUT_MS, `${cluster.name} ${workloadName(workload)}: opening the clients`);
  const lockOf = (index: number): string => (workload.kind === "own" ? `${options.prefix}/own-${index}` : `${options.prefix}/one`);
  try {
    const fifo = workload.kind === "one" ? cluster.fifo : undefined;
    const mark = fifo === undefined ? undefined : await fifo.mark(lockOf(0));
    const result = await measure(cluster, opened.workers, lockOf, options);
    const order = fifo === undefined || mark === undefined ? undefined : await withTimeout(fifo.check(lockOf(0), mark), SETUP_TIMEOUT_MS, `${cluster.name}: reading the order of grants`);
    return { ...result, fifo: order };
  } finally {
    await withTimeout(opened.close(), 10_000, `${cluster.name}: closing the clients`).catch((error: unknown) => console.log(String(error)));
  }
}

async function measure(cluster: LockCluster, workers: readonly LockWorker[], lockOf: (index: number) => string, options: RunOptions): Promise<Omit<WorkloadResult, "fifo">> {
  const window: Window = { stopping: false, start: Number.POSITIVE_INFINITY, end: Number.POSITIVE_INFINITY };
  const samples = new Samples();
  const counted = workers.map(() => 0);
  let refused = 0;
  let errors = 0;
  let firstError: string | undefined;

  const loop = async (worker: LockWorker, index: number): Promise<void> => {
    const lock = lockOf(index);
    while (!window.stopping) {
      const begin = performance.now();
      let attemptsRefused: number;
      try {
        attemptsRefused = await worker.cycle(lock);
      } catch (error) {
        errors += 1;
        firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        if (errors >= MAX_ERRORS) window.stopping = true;
        await sleep(10);
        continue;
      }
      const finish = performance.now();
      if (finish >= window.start && finish <= window.end) {
        samples.push(finish - begin);
        counted[index] = (counted[index] as number) + 1;
        refused += attemptsRefused;
      }
    }
  };

  const running = workers.map((worker, index) => loop(worker, index));
  await sleep(options.warmupMs);
  const machineBefore = machineBusyMicros();
  const clientBefore = clientCpuMicros();
  const serversBefore = serversCpuMicros(cluster.serverPids);
  window.start = performance.now();
  await sleep(options.measureMs);
  window.end = performance.now();
  const clientAfter = clientCpuMicros();
  const serversAfter = serversCpuMicros(cluster.serverPids);
  const machineAfter = machineBusyMicros();
  window.stopping = true;
  const drained = await Promise.race([Promise.all(running).then(() => true), sleep(DRAIN_TIMEOUT_MS).then(() => false)]);

  const ops = samples.length;
  const seconds = (window.end - window.start) / 1000;
  const clientMicros = clientAfter - clientBefore;
  const serversMicros = serversAfter - serversBefore;
  return {
    ops,
    seconds,
    opsPerSecond: ops / seconds,
    p50Ms: samples.percentile(50),
    p99Ms: samples.percentile(99),
    clientCpuMicrosPerOp: clientMicros / ops,
    serversCpuMicrosPerOp: serversMicros / ops,
    otherCores: (machineAfter - machineBefore - clientMicros - serversMicros) / (seconds * 1_000_000),
    refusedPerOp: refused / ops,
    perWorkerMin: Math.min(...counted),
    perWorkerMax: Math.max(...counted),
    errors,
    firstError,
    drainTimedOut: !drained,
  };
}

/**
 * Replays one lock's events (queued, dequeued, acquired, in log order) against
 * a model of its FIFO queue: every grant must go to the queue's head, or, when
 * nobody waits, to an acquirer that found the lock free.
 */
export class FifoChecker {
  private readonly queue: string[] = [];
  private grants = 0;
  private fromQueue = 0;
  private violations = 0;
  private firstViolation: string | undefined;

  queued(session: string): void {
    this.queue.push(session);
  }

  dequeued(session: string): void {
    const at = this.queue.indexOf(session);
    if (at >= 0) this.queue.splice(at, 1);
  }

  acquired(session: string, token: number): void {
    this.grants += 1;
    const head = this.queue[0];
    if (head === session) {
      this.queue.shift();
      this.fromQueue += 1;
      return;
    }
    if (head === undefined) return;
    this.violations += 1;
    const at = this.queue.indexOf(session);
    this.firstViolation ??=
      at < 0
        ? `token ${token} went to ${session.slice(0, 8)}, which had not queued, while ${this.queue.length} waited`
        : `token ${token} went to ${session.slice(0, 8)}, position ${at + 1} in the queue, ahead of ${head.slice(0, 8)}`;
    if (at >= 0) this.queue.splice(at, 1);
  }

  result(unknown?: string): FifoCheck {
    return { grants: this.grants, fromQueue: this.fromQueue, violations: this.violations, firstViolation: this.firstViolation, unknown };
  }
}
