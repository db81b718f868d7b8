/**
 * The load generator both systems are driven with: closed-loop workers (each
 * issues its next operation when the previous one is answered), a warm-up,
 * then a fixed measured window in which throughput, latency and CPU are taken.
 *
 * The window is [measureStart, measureEnd]; an operation counts (and its
 * latency is a sample) when it completes inside it. CPU of the bench process
 * (the client) and of the three servers is read at both ends of the window.
 */
import { Samples } from "@synod/testkit";
import { clientCpuMicros, machineBusyMicros, serversCpuMicros, sleep } from "./processes.js";

/** What the load generator needs of a client; one is opened per workload. */
export interface KvDriver {
  put(key: string, value: string): Promise<void>;
  /** A linearizable read; undefined when the key is absent. */
  get(key: string): Promise<string | undefined>;
  /** Writes `value` if the key holds `expected`; whether it did. */
  compareAndSet(key: string, expected: string, value: string): Promise<boolean>;
  close(): Promise<void>;
}

/** A running 3-node cluster of one system. */
export interface Cluster {
  readonly name: "etcd" | "synod";
  /** The three server processes, whose CPU is summed. */
  readonly serverPids: readonly number[];
  /** A client sized for `concurrency` operations in flight. */
  connect(concurrency: number): Promise<KvDriver>;
  stop(): Promise<void>;
}

export type WorkloadKind = "put" | "get" | "cas";

export interface Workload {
  readonly kind: WorkloadKind;
  readonly concurrency: number;
}

export const WORKLOADS: readonly Workload[] = [
  { kind: "put", concurrency: 1 },
  { kind: "put", concurrency: 64 },
  { kind: "put", concurrency: 256 },
  { kind: "get", concurrency: 64 },
  { kind: "cas", concurrency: 16 },
];

export function workloadName(workload: Workload): string {
  return `${workload.kind} c=${workload.concurrency}`;
}

export interface WorkloadResult {
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU of the bench process per counted operation. */
  readonly clientCpuMicrosPerOp: number;
  /** CPU of the three servers together per counted operation. */
  readonly serversCpuMicrosPerOp: number;
  /**
   * Cores that other processes (not the bench, not these servers) kept busy
   * during the window, on average: above ~0.2 the figures are disturbed.
   */
  readonly otherCores: number;
  /** Failed operations (thrown, or a get that missed a key it wrote). */
  readonly errors: number;
  readonly firstError: string | undefined;
  /** CAS only: CAS operations that did not apply (each worker owns its key, so expected 0). */
  readonly casFailures: number;
  /** True when some worker was still waiting on an operation when the drain bound ran out. */
  readonly drainTimedOut: boolean;
}

export interface RunOptions {
  readonly warmupMs: number;
  readonly measureMs: number;
  /** A key prefix no other workload has used. */
  readonly prefix: string;
}

export const VALUE_BYTES = 100;
/** Keys each put worker cycles through, and keys the get workload reads. */
const KEYS_PER_PUT_WORKER = 1_000;
const GET_KEYS = 1_024;
const MAX_ERRORS = 200;
const DRAIN_TIMEOUT_MS = 15_000;
const SETUP_TIMEOUT_MS = 60_000;
const VALUE_FILLER = "x".repeat(VALUE_BYTES);

/** A 100-byte ASCII value that differs with `n` (so a CAS always changes the value). */
export function valueFor(n: number): string {
  const head = `v${n.toString(36)}-`;
  return head + VALUE_FILLER.slice(head.length);
}

interface Window {
  stopping: boolean;
  start: number;
  end: number;
}

/** One workload against one cluster, on a client opened for it and closed after. */
export async function runWorkload(cluster: Cluster, workload: Workload, options: RunOptions): Promise<WorkloadResult> {
  const driver = await cluster.connect(workload.concurrency);
  try {
    const operation = await withTimeout(prepare(driver, workload, options.prefix), SETUP_TIMEOUT_MS, `${cluster.name} ${workloadName(workload)}: setup`);
    return await measure(cluster, driver, workload.concurrency, operation, options);
  } finally {
    await withTimeout(driver.close(), 10_000, `${cluster.name}: closing the client`).catch((error: unknown) => console.log(String(error)));
  }
}

/** What one worker does per operation; it reports a CAS that did not apply by returning false. */
type Operation = (worker: number, n: number) => Promise<boolean>;

/** Writes what the workload reads, and returns its operation. */
async function prepare(driver: KvDriver, workload: Workload, prefix: string): Promise<Operation> {
  switch (workload.kind) {
    case "put":
      return async (worker, n) => {
        await driver.put(`${prefix}/${worker}/${n % KEYS_PER_PUT_WORKER}`, valueFor(n));
        return true;
      };
    case "get": {
      const keys = Array.from({ length: GET_KEYS }, (_, index) => `${prefix}/${index}`);
      await inBatches(keys, 64, (key, index) => driver.put(key, valueFor(index)));
      return async (worker, n) => {
        const value = await driver.get(keys[(worker * 31 + n) % GET_KEYS] as string);
        if (value === undefined) throw new Error("a linearizable get missed a key written before the workload");
        return true;
      };
    }
    case "cas": {
      // Each worker owns one key and knows its value, so conflicts do not dominate: CAS from the last value written.
      const keys = Array.from({ length: workload.concurrency }, (_, worker) => `${prefix}/${worker}`);
      const expected = keys.map((_, worker) => valueFor(worker));
      await inBatches(keys, 64, (key, worker) => driver.put(key, expected[worker] as string));
      let next = workload.concurrency;
      return async (worker) => {
        const key = keys[worker] as string;
        const value = valueFor((next += 1));
        if (await driver.compareAndSet(key, expected[worker] as string, value)) {
          expected[worker] = value;
          return true;
        }
        // Not expected with one writer per key; re-read so the loop goes on (the read is not timed as an operation).
        expected[worker] = (await driver.get(key)) ?? "";
        return false;
      };
    }
  }
}

async function measure(cluster: Cluster, driver: KvDriver, concurrency: number, operation: Operation, options: RunOptions): Promise<WorkloadResult> {
  const window: Window = { stopping: false, start: Number.POSITIVE_INFINITY, end: Number.POSITIVE_INFINITY };
  const samples = new Samples();
  let errors = 0;
  let casFailures = 0;
  let firstError: string | undefined;

  const worker = async (index: number): Promise<void> => {
    for (let n = 0; !window.stopping; n += 1) {
      const begin = performance.now();
      let applied: boolean;
      try {
        applied = await operation(index, n);
      } catch (error) {
        errors += 1;
        firstError ??= error instanceof Error ? error.message : String(error);
        if (errors >= MAX_ERRORS) window.stopping = true;
        await sleep(10);
        continue;
      }
      const finish = performance.now();
      if (finish >= window.start && finish <= window.end) {
        samples.push(finish - begin);
        if (!applied) casFailures += 1;
      }
    }
  };

  const workers = Array.from({ length: concurrency }, (_, index) => worker(index));
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
  const drained = await Promise.race([Promise.all(workers).then(() => true), sleep(DRAIN_TIMEOUT_MS).then(() => false)]);

  const ops = samples.length;
  const seconds = (window.end - window.start) / 1000;
  return {
    ops,
    seconds,
    opsPerSecond: ops / seconds,
    p50Ms: samples.percentile(50),
    p99Ms: samples.percentile(99),
    clientCpuMicrosPerOp: (clientAfter - clientBefore) / ops,
    serversCpuMicrosPerOp: (serversAfter - serversBefore) / ops,
    otherCores: (machineAfter - machineBefore - (clientAfter - clientBefore) - (serversAfter - serversBefore)) / (seconds * 1_000_000),
    errors,
    firstError,
    casFailures,
    drainTimedOut: !drained,
  };
}

/** `action` over `items`, at most `width` at a time. */
async function inBatches<T>(items: readonly T[], width: number, action: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next;
      next += 1;
      await action(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}

export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
