/**
 * A 3-node etcd against a 3-node Synod KV, on loopback, under the same load.
 *
 *   pnpm bench:kv                      (from the repository root)
 *   BENCH_SECONDS=5 BENCH_WARMUP_SECONDS=1 BENCH_REPS=1 BENCH_SYSTEMS=etcd,synod BENCH_WORKLOADS=put-1,get-64 pnpm bench:kv
 *
 * BENCH_WORKLOADS picks workloads by `kind-concurrency` (default: all of
 * put-1, put-64, put-256, get-64, cas-16).
 * BENCH_SYNOD_FLAGS adds `serve` flags to every Synod replica (e.g.
 * "--lease-ms 0" to measure reads without master leases).
 *
 * Each system's cluster is started on its own (never both at once, so they do
 * not compete for the cores), runs every workload in turn, and is stopped.
 * Each workload opens its own client and writes under a key prefix no other
 * workload used. See bench/README.md for what is measured and how.
 *
 * The targets are printed as PASS/FAIL lines; the bench itself always exits 0
 * unless it crashes.
 */
import { cpus, freemem, loadavg, totalmem } from "node:os";
import { ensureEtcd, etcdVersion, startEtcdCluster } from "./etcd.js";
import { type Cluster, VALUE_BYTES, WORKLOADS, type WorkloadResult, runWorkload, workloadName } from "./load.js";
import { CLOCK_TICKS_PER_SECOND, installCleanup, makeTempDirectory, removeTempDirectory } from "./processes.js";
import { type Results, type SystemName, formatComparison, formatDisturbance, formatLine, formatMarkdown, formatTargets } from "./report.js";

function numberFromEnvironment(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number (got "${text}")`);
  return value;
}

const MEASURE_SECONDS = numberFromEnvironment("BENCH_SECONDS", 5);
const WARMUP_SECONDS = numberFromEnvironment("BENCH_WARMUP_SECONDS", 1);
const REPS = Math.round(numberFromEnvironment("BENCH_REPS", 1));
const SYSTEMS = (process.env.BENCH_SYSTEMS ?? "etcd,synod").split(",").filter((name): name is SystemName => name === "etcd" || name === "synod");
const SELECTED = (process.env.BENCH_WORKLOADS ?? "").split(",").filter((name) => name !== "");
const RUN_WORKLOADS = SELECTED.length === 0 ? WORKLOADS : WORKLOADS.filter((workload) => SELECTED.includes(`${workload.kind}-${workload.concurrency}`));
if (RUN_WORKLOADS.length === 0) throw new Error(`BENCH_WORKLOADS names none of ${WORKLOADS.map((workload) => `${workload.kind}-${workload.concurrency}`).join(", ")}`);

/** Starts one system's cluster in `directory`, or says why it is skipped. */
async function startCluster(system: SystemName, directory: string): Promise<Cluster | string> {
  if (system === "etcd") {
    const binary = ensureEtcd();
    if (binary === undefined) return "etcd could not be found or installed";
    console.log(`etcd: ${binary}, version ${etcdVersion(binary)}`);
    return startEtcdCluster(binary, directory);
  }
  // Loaded only when Synod is measured, so BENCH_SYSTEMS=etcd needs no bundle.
  const { startSynodCluster } = await import("./synod.js");
  return startSynodCluster(directory);
}

async function runSystem(system: SystemName, results: Results, runId: string): Promise<void> {
  const directory = makeTempDirectory(`synod-bench-kv-${system}-`);
  try {
    const startedAt = performance.now();
    const cluster = await startCluster(system, directory);
    if (typeof cluster === "string") {
      console.log(`${system}: skipped (${cluster})`);
      return;
    }
    console.log(`${system}: 3 servers up in ${((performance.now() - startedAt) / 1000).toFixed(1)} s (pids ${cluster.serverPids.join(", ")}, data in ${directory})`);
    try {
      for (let rep = 1; rep <= REPS; rep += 1) {
        for (const workload of RUN_WORKLOADS) {
          const name = workloadName(workload);
          const prefix = `bench-${runId}/${workload.kind}-${workload.concurrency}/rep-${rep}`;
          const result = await runWorkload(cluster, workload, { warmupMs: WARMUP_SECONDS * 1000, measureMs: MEASURE_SECONDS * 1000, prefix });
          console.log(formatLine(system, workload, result));
          const entry = results.get(name) ?? {};
          entry[system] = [...(entry[system] ?? ([] as WorkloadResult[])), result];
          results.set(name, entry);
        }
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

async function main(): Promise<void> {
  installCleanup();
  const processors = cpus();
  console.log("# KV benchmark: 3-node etcd vs 3-node Synod KV on 127.0.0.1");
  console.log(
    `machine: ${processors.length} cores (${processors[0]?.model ?? "unknown CPU"}), ` +
      `${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM (${(freemem() / 2 ** 30).toFixed(1)} free), ` +
      `load average ${loadavg()
        .map((load) => load.toFixed(2))
        .join(" ")}, node ${process.version}, ${process.platform}/${process.arch}, CLK_TCK ${CLOCK_TICKS_PER_SECOND}`,
  );
  console.log(
    `load: ${VALUE_BYTES}-byte values, ${WARMUP_SECONDS} s warm-up then ${MEASURE_SECONDS} s measured per workload, ${REPS} rep(s) (medians), ` +
      `workloads ${RUN_WORKLOADS.map(workloadName).join(", ")}; systems ${SYSTEMS.join(", ")}`,
  );
  const results: Results = new Map();
  const runId = Date.now().toString(36);
  for (const system of SYSTEMS) await runSystem(system, results, runId);

  console.log("\n## Side by side (medians; CPU is µs per operation: the bench process, and the 3 servers summed)\n");
  console.log(formatComparison(RUN_WORKLOADS, results));
  const disturbance = formatDisturbance(results);
  if (disturbance !== undefined) console.log(`\n${disturbance}`);
  console.log(`load average at the end: ${loadavg()
    .map((load) => load.toFixed(2))
    .join(" ")}`);
  console.log("\n## Targets\n");
  for (const line of formatTargets(results)) console.log(line);
  console.log("\n## Markdown\n");
  console.log(formatMarkdown(RUN_WORKLOADS, results));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
