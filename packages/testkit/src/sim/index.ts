export { Simulation, type SimulationResult, type SimulationStatistics } from "./simulation.js";
export { DEFAULT_FAULTS, DEFAULT_SIMULATION, simulationOptions, replayCommand, type FaultOptions, type SimulationOptions, type SimulationOverrides } from "./options.js";
export { KvMachine, type KvOp, type KvQuery, type KvTest } from "./kv-machine.js";
export { EventQueue } from "./event-queue.js";
export { checkHistories, type HistoryVerdict } from "./sim-check.js";
export type { HistoryRecord } from "./sim-client.js";
export { runSimulation, runSeeds, type SeedsSummary } from "./run.js";
