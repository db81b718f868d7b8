import { Simulation, simulationOptions } from "/work/main/packages/testkit/src/sim/index.js";
const seed = Number(process.argv[2]); const replicas = Number(process.argv[3] ?? 3); const bugs = process.argv.slice(4) as any;
const r = new Simulation(simulationOptions({ seed, replicas, bugs }), (line) => console.log(line)).run();
console.log(r.violation ?? "ok");
