/**
 * Synod's lock service against etcd's lock (through the `etcd3` client), a
 * 3-node cluster of each on loopback, under the same load.
 *
 *   pnpm bench:lock                    (from the repository root)
 *   BENCH_SECONDS=5 BENCH_WARMUP_SECONDS=1 BENCH_CLIENTS=16 BENCH_SYSTEMS=etcd,synod BENCH_WORKLOADS=own,one \
 *   BENCH_CLIENT=own BENCH_ETCD_RETRY_MS=5 pnpm bench:lock
 *
 * BENCH_CLIENT=shared puts every worker on one client object (one connection
 * per server) instead of one each; each worker still has its own session or
 * leases. BENCH_ETCD_RETRY_MS bounds the random pause before etcd retries a
 * refused acquire.
 *
 * Workloads: `own`, every client acquires and releases a lock of its own;
 * `one`, every client contends for the same lock. Each system's cluster is
 * started on its own (never both at once, so they do not compete for the
 * cores), runs every workload, and is stopped. See bench/README.md.
 *
 * The targets are printed as PASS/FAIL lines; the bench itself always exits 0
 * unless it crashes.
 */
import { cpus, freemem, loadavg, totalmem } from "node:os";
import { CLOCK_TICKS_PER_SECOND, installCleanup, makeTempDirectory, removeTempDirectory } from "../../app-kv/bench/processes.js";
import { ensureEtcd, etcdVersion, startEtcdLockCluster } from "./etcd.js";
import { type LockCluster, type SystemName, type Workload, type WorkloadKind, runWorkload, workloadName } from "./load.js";
import { type Results, formatComparison, formatDisturbance, formatLine, formatMarkdown, formatTargets } from "./report.js";

function numberFromEnvironment(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number (got "${text}")`);
  return value;
}

const MEASURE_SECONDS = numberFromEnvironment("BENCH_SECONDS", 5);
const WARMUP_SECONDS = numberFromEnvironment("BENCH_WARMUP_SECONDS", 1);
const CLIENTS = Math.round(numberFromEnvironment("BENCH_CLIENTS", 16));
/** etcd retries a refused acquire after a random pause in [0, this) ms. */
const ETCD_RETRY_PAUSE_MS = numberFromEnvironment("BENCH_ETCD_RETRY_MS", 5);
const CLIENT_MODE = process.env.BENCH_CLIENT ?? "own";
if (CLIENT_MODE !== "own" && CLIENT_MODE !== "shared") throw new Error(`BENCH_CLIENT is own (a client object per worker) or shared (one for all), not "${CLIENT_MODE}"`);
const SYSTEMS = (process.env.BENCH_SYSTEMS ?? "etcd,synod").split(",").filter((name): name is SystemName => name === "etcd" || name === "synod");
const KINDS = (process.env.BENCH_WORKLOADS ?? "own,one").split(",").filter((name): name is WorkloadKind => name === "own" || name === "one");
if (SYSTEMS.length === 0) throw new Error("BENCH_SYSTEMS names neither etcd nor synod");
if (KINDS.length === 0) throw new Error("BENCH_WORKLOADS names neither own nor one");
const WORKLOADS: readonly Workload[] = KINDS.map((kind) => ({ kind, clients: CLIENTS }));

/** Starts one system's cluster in `directory`, or says why it is skipped. */
async function startCluster(system: SystemName, directory: string): Promise<LockCluster | string> {
  if (system === "etcd") {
    const binary = ensureEtcd();
    if (binary === undefined) return "etcd could not be found or installed";
    console.log(`etcd: ${binary}, version ${etcdVersion(binary)}`);
    return startEtcdLockCluster(binary, directory, ETCD_RETRY_PAUSE_MS);
  }
  // Loaded only when Synod is measured, so BENCH_SYSTEMS=etcd needs no bundle.
  const { startSynodCluster } = await import("./synod.js");
  return startSynodCluster(directory);
}

async function runSystem(system: SystemName, results: Results, runId: string): Promise<void> {
  const directory = makeTempDirectory(`synod-bench-lock-${system}-`);
  try {
    const startedAt = performance.now();
    const cluster = await startCluster(system, directory);
    if (typeof cluster === "string") {
      console.log(`${system}: skipped (${cluster})`);
      return;
    }
    console.log(`${system}: 3 servers up in ${((performance.now() - startedAt) / 1000).toFixed(1)} s (pids ${cluster.serverPids.join(", ")}, data in ${directory})`);
    try {
      for (const workload of WORKLOADS) {
        const prefix = `bench-${runId}/${workload.kind}-${workload.clients}`;
        const result = await runWorkload(cluster, workload, { shareClient: CLIENT_MODE === "shared", warmupMs: WARMUP_SECONDS * 1000, measureMs: MEASURE_SECONDS * 1000, prefix });
        console.log(formatLine(system, workload, result));
        const name = workloadName(workload);
        results.set(name, { ...results.get(name), [system]: result });
      }
    } finally {
      await cluster.stop();
    }
  } catch (error) {
    // One system failing still leaves the other's figures worth printing.
    console.log(`${system}: FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    removeTempDirectory(directory);
  }
}

function loadAverage(): string {
  return loadavg()
    .map((load) => load.toFixed(2))
    .join(" ");
}

async function main(): Promise<void> {
  installCleanup();
  const processors = cpus();
  console.log("# Lock benchmark: 3-node etcd (etcd3 client's lock) vs 3-node Synod lock service on 127.0.0.1");
  console.log(
    `machine: ${processors.length} cores (${processors[0]?.model ?? "unknown CPU"}), ` +
      `${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM (${(freemem() / 2 ** 30).toFixed(1)} free), ` +
      `load average ${loadAverage()}, node ${process.version}, ${process.platform}/${process.arch}, CLK_TCK ${CLOCK_TICKS_PER_SECOND}`,
  );
  console.log(
    `load: ${CLIENTS} workers, each with its own session (Synod, TTL 10 s) or leases (etcd, TTL 10 s) over ${CLIENT_MODE === "own" ? "a client object (connections) of its own" : "one shared client object (BENCH_CLIENT=shared)"}, acquire then release in a loop; ` +
      `${WARMUP_SECONDS} s warm-up then ${MEASURE_SECONDS} s measured per workload; workloads ${WORKLOADS.map(workloadName).join(", ")}; systems ${SYSTEMS.join(", ")}; ` +
      `etcd retries a refused acquire after a random 0–${ETCD_RETRY_PAUSE_MS} ms pause`,
  );
  const results: Results = new Map();
  const runId = Date.now().toString(36);
  for (const system of SYSTEMS) await runSystem(system, results, runId);

  console.log("\n## Side by side (CPU is µs per acquire+release: the bench process, and the 3 servers summed)\n");
  console.log(formatComparison(WORKLOADS, results));
  const disturbance = formatDisturbance(results);
  if (disturbance !== undefined) console.log(`\n${disturbance}`);
  console.log(`load average at the end: ${loadAverage()}`);
  console.log("\n## Targets\n");
  for (const line of formatTargets(WORKLOADS, results)) console.log(line);
  console.log("\n## Markdown\n");
  console.log(formatMarkdown(WORKLOADS, results));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
