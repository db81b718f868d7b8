import { runSeeds } from "/work/main/packages/testkit/src/sim/index.js";
const first = Number(process.argv[2] ?? 1), count = Number(process.argv[3] ?? 200);
const t0 = performance.now();
const s = runSeeds(first, count, { replicasFor: (seed) => [3, 5, 3, 7, 1][seed % 5] as number }, { onResult: (r) => { if (r.violation) console.log(r.seed, r.options.replicas, r.violation.slice(0, 300)); } });
console.log(`runs=${s.runs} failures=${s.failures.length} ops=${s.operationsChecked} chosen=${s.chosenSlots} crashes=${s.crashes} ms=${(performance.now()-t0).toFixed(0)}`);
