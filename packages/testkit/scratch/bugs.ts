import { PLANTED_BUGS } from "/work/main/packages/core/src/index.js";
import { runSimulation } from "/work/main/packages/testkit/src/sim/index.js";
const only = process.argv[2];
for (const bug of PLANTED_BUGS) {
  if (only && bug !== only) continue;
  const t0 = performance.now();
  let found = -1; let msg = "";
  for (let seed = 1; seed <= 500; seed++) {
    const r = runSimulation({ seed, replicas: seed % 2 ? 3 : 5, bugs: [bug] });
    if (r.violation) { found = seed; msg = r.violation.slice(0, 200); break; }
  }
  console.log(bug.padEnd(28), found, ((performance.now()-t0)/1000).toFixed(1)+"s", msg);
}
