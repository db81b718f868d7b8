/**
 * Throughput of Synod's core on a 3-replica in-memory cluster: commands chosen
 * (and applied at the leader) per second, and process CPU µs per command,
 * with batching (`maxBatchCommands` 512, the default) and without (1).
 *
 *   core    the three Replicas and hosts driven synchronously in one loop
 *   driver  the same through three SynodNodes over MemoryNetwork/MemoryStorage
 *
 * Usage (from packages/core): pnpm bench [-- --reps=5 --mode=all|core|driver --batching=all|batched|unbatched --window=4096 --quick]
 * See bench/README.md.
 */
import type { Accounting } from "./core-cluster.js";
import { type RepResult, type RunConfig, coreRep, driverRep } from "./runs.js";

// ------------------------------------------------------------------ options

const args = new Map(
  process.argv.slice(2).map((arg) => {
    const [key = "", value = "true"] = arg.replace(/^--/, "").split("=", 2);
    return [key, value] as const;
  }),
);
const REPS = Number(args.get("reps") ?? 5);
const MODE = args.get("mode") ?? "all";
/** `batched`, `unbatched` or `all`. */
const BATCHING = args.get("batching") ?? "all";
const QUICK = args.has("quick");
/** Commands proposed and not yet applied at the leader. */
const WINDOW = Number(args.get("window") ?? 4096);
/** A rep stops early (and says so) after this long. */
const LIMIT_MS = 8_000;
const SEED = Number(args.get("seed") ?? 1);

const scale = QUICK ? 0.1 : 1;
const ALL_CONFIGS: readonly RunConfig[] = [
  { mode: "core", label: "batched (512)", options: { maxBatchCommands: 512 }, commands: 500_000 * scale, window: WINDOW, limitMs: LIMIT_MS },
  { mode: "core", label: "unbatched (1)", options: { maxBatchCommands: 1 }, commands: 100_000 * scale, window: WINDOW, limitMs: LIMIT_MS },
  { mode: "driver", label: "batched (512)", options: { maxBatchCommands: 512 }, commands: 200_000 * scale, window: WINDOW, limitMs: LIMIT_MS },
  { mode: "driver", label: "unbatched (1)", options: { maxBatchCommands: 1 }, commands: 40_000 * scale, window: WINDOW, limitMs: LIMIT_MS },
];
if (!(REPS >= 1) || !(WINDOW >= 1) || !["all", "core", "driver"].includes(MODE) || !["all", "batched", "unbatched"].includes(BATCHING)) {
  console.error("usage: throughput.ts [--reps=N] [--mode=all|core|driver] [--batching=all|batched|unbatched] [--window=N] [--seed=N] [--quick]");
  process.exit(2);
}
/** The aim for core mode with batching, on one core. */
const AIM_CMD_PER_S = 200_000;

const CONFIGS = ALL_CONFIGS.filter(
  (config) => (MODE === "all" || config.mode === MODE) && (BATCHING === "all" || config.label.startsWith(BATCHING)),
);

// ------------------------------------------------------------------ reporting

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const int = (value: number): string => Math.round(value).toLocaleString("en-US");
const fixed = (value: number, digits: number): string => value.toFixed(digits);
const rate = (rep: RepResult): number => rep.commands / (rep.wallMs / 1000);
const cpuPer = (rep: RepResult): number => rep.cpuUs / rep.commands;

function describeRep(config: RunConfig, index: number, rep: RepResult): string {
  return [
    `  ${config.mode.padEnd(6)} ${config.label.padEnd(13)} rep ${index + 1}:`,
    `${int(rate(rep)).padStart(9)} cmd/s`,
    `${fixed(cpuPer(rep), 2).padStart(7)} CPU µs/cmd`,
    `${fixed(rep.cpuUs / 1000 / rep.wallMs, 2)} cores`,
    `${int(rep.commands)} cmds in ${int(rep.wallMs)} ms`,
    `${int(rep.slots)} slots`,
    `${fixed(rep.messages / rep.commands, 4)} msgs/cmd${rep.truncated ? "  (stopped at the time limit)" : ""}`,
  ].join("  ");
}

interface Row {
  readonly config: RunConfig;
  readonly reps: readonly RepResult[];
}

function table(rows: readonly Row[]): string {
  const header = ["mode", "batching", "cmds/rep", "median cmd/s", "median CPU µs/cmd", "cores", "cmds/slot", "msgs/cmd", "cmd/s of each rep"];
  const lines = rows.map(({ config, reps }) => [
    config.mode,
    config.label,
    int(median(reps.map((rep) => rep.commands))),
    int(median(reps.map(rate))),
    fixed(median(reps.map(cpuPer)), 2),
    fixed(median(reps.map((rep) => rep.cpuUs / 1000 / rep.wallMs)), 2),
    fixed(median(reps.map((rep) => rep.commands / Math.max(1, rep.slots))), 1),
    fixed(median(reps.map((rep) => rep.messages / rep.commands)), 4),
    reps.map((rep) => int(rate(rep))).join(" "),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => (line[column] as string).length)));
  const format = (cells: readonly string[]): string => cells.map((cell, column) => cell.padEnd(widths[column] as number)).join(" | ");
  return [format(header), widths.map((width) => "-".repeat(width)).join("-|-"), ...lines.map(format)].join("\n");
}

function wireReport(config: RunConfig): string {
  const commands = Math.max(1000, Math.round(config.commands / 10));
  const accounting: Accounting = { messages: new Map(), messageBytes: new Map(), persistBytes: 0, persistRecords: 0 };
  const rep = coreRep({ ...config, commands }, SEED, accounting);
  let bytes = 0;
  const parts: string[] = [];
  for (const [type, count] of [...accounting.messages].sort((a, b) => b[1] - a[1])) {
    const typeBytes = accounting.messageBytes.get(type) ?? 0;
    bytes += typeBytes;
    parts.push(`${type} ${fixed(count / rep.commands, 4)} (${fixed(typeBytes / rep.commands, 1)} B)`);
  }
  return [
    `  core ${config.label}, ${int(rep.commands)} cmds, JSON sizes: wire ${fixed(bytes / rep.commands, 1)} B/cmd, ` +
      `persisted ${fixed(accounting.persistBytes / rep.commands, 1)} B/cmd (all 3 replicas, ` +
      `${fixed(accounting.persistRecords / rep.slots, 2)} slot records written per slot)`,
    `    per cmd: ${parts.join(", ")}`,
  ].join("\n");
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const began = performance.now();
  console.log(`Synod core throughput: 3 replicas in memory, ${WINDOW} commands in flight, 16-byte puts on a Map`);
  console.log(`node ${process.version}, ${REPS} reps per configuration${QUICK ? " (quick)" : ""}, seed ${SEED}\n`);
  // Warm-up (JIT) with a short run of each mode, not reported.
  for (const config of CONFIGS) {
    const warm = { ...config, commands: Math.max(1000, Math.round(config.commands / 10)) };
    if (config.mode === "core") coreRep(warm, SEED + 999);
    else await driverRep(warm, SEED + 999);
  }
  const rows: Row[] = [];
  for (const config of CONFIGS) {
    const reps: RepResult[] = [];
    for (let index = 0; index < REPS; index += 1) {
      const rep = config.mode === "core" ? coreRep(config, SEED + index) : await driverRep(config, SEED + index);
      reps.push(rep);
      console.log(describeRep(config, index, rep));
    }
    rows.push({ config, reps });
  }
  console.log(`\nMedians of ${REPS} reps (CPU is process user+system time over the measured interval):\n`);
  console.log(table(rows));
  const batchedCore = rows.find((row) => row.config.mode === "core" && row.config.options.maxBatchCommands !== 1);
  if (batchedCore !== undefined) {
    const achieved = median(batchedCore.reps.map(rate));
    console.log(`\nAim: ≥ ${int(AIM_CMD_PER_S)} cmd/s in core mode with batching: ${achieved >= AIM_CMD_PER_S ? "met" : "NOT met"} (median ${int(achieved)}).`);
  }
  const coreConfigs = CONFIGS.filter((config) => config.mode === "core");
  if (coreConfigs.length > 0) {
    console.log("\nMessages and bytes per command (core mode, one untimed run each; JSON length as a size estimate):");
    for (const config of coreConfigs) console.log(wireReport(config));
  }
  console.log(`\ntotal ${fixed((performance.now() - began) / 1000, 1)} s`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
