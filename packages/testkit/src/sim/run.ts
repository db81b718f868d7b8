import { Simulation, type SimulationResult } from "./simulation.js";
import { type SimulationOverrides, simulationOptions } from "./options.js";

/** Runs one seeded simulation. */
export function runSimulation(overrides: SimulationOverrides & { seed: number }): SimulationResult {
  return new Simulation(simulationOptions(overrides)).run();
}

export interface SeedsSummary {
  readonly runs: number;
  readonly failures: readonly SimulationResult[];
  readonly operationsChecked: number;
  readonly chosenSlots: number;
  readonly crashes: number;
  readonly partitions: number;
}

/** Runs `count` seeds from `firstSeed`, optionally stopping at the first failure. */
export function runSeeds(
  firstSeed: number,
  count: number,
  overrides: SimulationOverrides & { replicasFor?: (seed: number) => number },
  options: { stopAtFirstFailure?: boolean; onResult?: (result: SimulationResult) => void } = {},
): SeedsSummary {
  const failures: SimulationResult[] = [];
  let operationsChecked = 0;
  let chosenSlots = 0;
  let crashes = 0;
  let partitions = 0;
  let runs = 0;
  const { replicasFor, ...rest } = overrides;
  for (let seed = firstSeed; seed < firstSeed + count; seed += 1) {
    const result = runSimulation({ ...rest, seed, ...(replicasFor === undefined ? {} : { replicas: replicasFor(seed) }) });
    runs += 1;
    options.onResult?.(result);
    operationsChecked += result.verdicts.reduce((sum, verdict) => sum + verdict.operations, 0);
    chosenSlots += result.statistics.chosenSlots;
    crashes += result.statistics.crashes;
    partitions += result.statistics.partitions;
    if (result.violation !== undefined) {
      failures.push(result);
      if (options.stopAtFirstFailure) break;
    }
  }
  return { runs, failures, operationsChecked, chosenSlots, crashes, partitions };
}
