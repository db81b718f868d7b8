import type { KvMachine } from "../src/index.js";

/**
 * Everything a client can read from a machine: status, leases, every key at
 * every readable revision (gets and ranges, in every mode), and the event log
 * from its start. Two machines with equal observations answer every query alike.
 * Checks the machine's invariants first.
 */
export function observe(machine: KvMachine): unknown[] {
  machine.checkInvariants();
  const seen: unknown[] = [];
  const status = machine.status();
  seen.push(status, machine.digest(), machine.query({ type: "leases" }));
  const leases = machine.query({ type: "leases" });
  if (leases.type === "leases") for (const lease of leases.leases) seen.push(machine.query({ type: "lease", id: lease.id }));
  const keys = new Set<string>();
  for (let revision = Math.max(1, status.compactRevision); revision <= status.revision; revision += 1) {
    const all = machine.query({ type: "range", start: "", revision });
    seen.push(all, machine.query({ type: "range", start: "", revision, keysOnly: true, limit: 2 }), machine.query({ type: "range", start: "b", revision, countOnly: true }));
    if (all.type === "range") for (const kv of all.kvs) keys.add(kv.key);
  }
  for (const key of [...keys].sort()) {
    for (let revision = Math.max(1, status.compactRevision); revision <= status.revision; revision += 1) seen.push(machine.query({ type: "get", key, revision }));
  }
  seen.push(machine.query({ type: "events", fromRevision: status.historyStartRevision }));
  seen.push(machine.query({ type: "events", fromRevision: Math.max(0, status.historyStartRevision - 1) }));
  return seen;
}
