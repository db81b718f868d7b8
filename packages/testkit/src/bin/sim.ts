#!/usr/bin/env node
import { FAILURE_POINTS, type FailurePoint, PLANTED_BUGS, type PlantedBug } from "@synod/core";
import { Simulation, runSeeds, simulationOptions, type SimulationResult } from "../sim/index.js";

const USAGE = `usage: synod-sim [--seed N | --first N --seeds N] [--replicas 1|3|5|7] [--reconfigure] [--bug NAME]...
                 [--clock-drift F] [--lease-ms N] [--max-clock-drift F] [--crash-at POINT] [--trace]

Runs seeded whole-cluster simulations with faults and checks every history.
  --seed N        run one seed (replays a failure exactly)
  --first N       first seed of a sweep (default 1, or SYNOD_SIM_FIRST_SEED)
  --seeds N       number of seeds in a sweep (default 1000, or SYNOD_SIM_SEEDS)
  --replicas R    cluster size; a sweep without it alternates 3 and 5
  --reconfigure   random configuration changes (add, promote, remove, replace, the leader's seat too)
  --bug NAME      plant a known bug (${PLANTED_BUGS.join(", ")})
  --clock-drift F each replica's clock runs fast or slow by up to F (default 0.05)
  --lease-ms N    master lease length in ms (default 80; 0: every read takes a read-index round)
  --max-clock-drift F  the drift bound leases assume (default 0.05); below --clock-drift, lease reads may be stale
  --crash-at POINT     crash replicas at a named failure point (${FAILURE_POINTS.join(", ")})
  --trace         print every event of a single seed`;

interface Arguments {
  seed: number | undefined;
  first: number;
  seeds: number;
  replicas: number | undefined;
  bugs: PlantedBug[];
  trace: boolean;
  reconfigure: boolean;
  clockDrift: number | undefined;
  leaseMs: number | undefined;
  maxClockDrift: number | undefined;
  crashAt: FailurePoint | undefined;
}

function fail(message: string): never {
  process.stderr.write(`synod-sim: ${message}\n${USAGE}\n`);
  process.exit(64);
}

function positiveInteger(name: string, text: string | undefined): number {
  const value = Number(text);
  if (text === undefined || !Number.isSafeInteger(value) || value < 0) fail(`${name} takes a whole number, got ${text ?? "nothing"}`);
  return value;
}

function fraction(name: string, text: string | undefined): number {
  const value = Number(text);
  if (text === undefined || text.trim() === "" || !Number.isFinite(value) || value < 0 || value >= 1) fail(`${name} takes a fraction in [0, 1), got ${text ?? "nothing"}`);
  return value;
}

/** The simulation options the flags set, beyond seed and replicas. */
function overridesOf(args: Arguments) {
  return {
    bugs: args.bugs,
    reconfigure: args.reconfigure,
    crashAt: args.crashAt,
    ...(args.clockDrift === undefined ? {} : { faults: { clockDrift: args.clockDrift } }),
    replica: {
      ...(args.leaseMs === undefined ? {} : { leaseMs: args.leaseMs }),
      ...(args.maxClockDrift === undefined ? {} : { maxClockDrift: args.maxClockDrift }),
    },
  };
}

function parseArguments(argv: readonly string[]): Arguments {
  const parsed: Arguments = {
    seed: undefined,
    first: positiveInteger("SYNOD_SIM_FIRST_SEED", process.env.SYNOD_SIM_FIRST_SEED ?? "1"),
    seeds: positiveInteger("SYNOD_SIM_SEEDS", process.env.SYNOD_SIM_SEEDS ?? "1000"),
    replicas: undefined,
    bugs: [],
    trace: false,
    reconfigure: false,
    clockDrift: undefined,
    leaseMs: undefined,
    maxClockDrift: undefined,
    crashAt: undefined,
  };
  for (let index = 0; index < argv.length; index += 1) {
    const flag = argv[index];
    const value = argv[index + 1];
    switch (flag) {
      case "--":
        break;
      case "--seed":
        parsed.seed = positiveInteger(flag, value);
        index += 1;
        break;
      case "--first":
        parsed.first = positiveInteger(flag, value);
        index += 1;
        break;
      case "--seeds":
        parsed.seeds = positiveInteger(flag, value);
        index += 1;
        break;
      case "--replicas": {
        const replicas = positiveInteger(flag, value);
        if (![1, 3, 5, 7].includes(replicas)) fail(`--replicas must be 1, 3, 5 or 7, got ${replicas}`);
        parsed.replicas = replicas;
        index += 1;
        break;
      }
      case "--bug":
        if (!PLANTED_BUGS.includes(value as PlantedBug)) fail(`unknown bug ${value ?? "(none)"}`);
        parsed.bugs.push(value as PlantedBug);
        index += 1;
        break;
      case "--trace":
        parsed.trace = true;
        break;
      case "--clock-drift":
        parsed.clockDrift = fraction(flag, value);
        index += 1;
        break;
      case "--max-clock-drift":
        parsed.maxClockDrift = fraction(flag, value);
        index += 1;
        break;
      case "--crash-at":
        if (!FAILURE_POINTS.includes(value as FailurePoint)) fail(`unknown failure point ${value ?? "(none)"}`);
        parsed.crashAt = value as FailurePoint;
        index += 1;
        break;
      case "--lease-ms":
        parsed.leaseMs = positiveInteger(flag, value);
        index += 1;
        break;
      case "--reconfigure":
        parsed.reconfigure = true;
        break;
      case "--help":
      case "-h":
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        fail(`unknown argument ${flag}`);
    }
  }
  return parsed;
}

function describe(result: SimulationResult): string {
  const s = result.statistics;
  return `seed ${result.seed} replicas=${result.options.replicas} trace=${result.traceHash} chosen=${s.chosenSlots} ops=${s.operationsOk}+${s.operationsUnknown}? crashes=${s.crashes} pauses=${s.pauses} partitions=${s.partitions} stalls=${s.diskStalls} wipes=${s.wipes}/${s.rebuilds} leaseReads=${s.leaseReads} staleEpoch=${s.staleEpochCommands}${result.options.crashAt === undefined ? "" : ` pointCrashes=${s.failurePointCrashes}`}${result.options.reconfigure ? ` configs=${s.configChangesChosen}/${s.configChangesProposed}` : ""}`;
}

function main(): void {
  const args = parseArguments(process.argv.slice(2));
  if (args.seed !== undefined) {
    const options = simulationOptions({ seed: args.seed, replicas: args.replicas ?? 3, ...overridesOf(args) });
    const result = new Simulation(options, args.trace ? (line) => process.stdout.write(`${line}\n`) : undefined).run();
    process.stdout.write(`${describe(result)}\n`);
    if (result.violation !== undefined) {
      process.stdout.write(`VIOLATION: ${result.violation}\nreplay: ${result.replay}\n`);
      process.exit(1);
    }
    process.stdout.write("ok\n");
    return;
  }
  const started = performance.now();
  let done = 0;
  const summary = runSeeds(
    args.first,
    args.seeds,
    { ...overridesOf(args), replicasFor: (seed) => args.replicas ?? (seed % 2 === 0 ? 5 : 3) },
    {
      onResult: (result) => {
        done += 1;
        if (result.violation !== undefined) {
          process.stdout.write(`FAIL ${describe(result)}\n  ${result.violation.split("\n")[0]}\n  replay: ${result.replay}\n`);
        } else if (done % 500 === 0) {
          process.stdout.write(`${done}/${args.seeds} seeds, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
        }
      },
    },
  );
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  process.stdout.write(
    `${summary.runs} runs, ${summary.failures.length} violations, ${summary.operationsChecked} operations checked, ${summary.chosenSlots} slots chosen, ${summary.crashes} crashes, ${summary.partitions} partitions, ${seconds} s\n`,
  );
  process.stdout.write(`${summary.runs - summary.failures.length} passed, ${summary.failures.length} failed\n`);
  if (summary.failures.length > 0) process.exit(1);
}

main();
