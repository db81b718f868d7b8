import type { CommandBody } from "@synod/core";
import {
  type CompareTest,
  type KeyValue,
  type KvError,
  type KvEvent,
  type KvOp,
  type KvResult,
  type KvTest,
  kvErrors,
} from "../src/index.js";

/**
 * A deliberately naive model of the KV store, written from the spec and not
 * from the machine: a plain `Map` per revision (the whole state copied at every
 * revision), all events forever, and a command made atomic by cloning the
 * model before it and putting the clone back on failure. Slow and obviously
 * right, which is the point.
 */
interface Entry {
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly lease: number;
}

interface Lease {
  readonly ttlMs: number;
  readonly expiresAt: number;
}

interface State {
  revision: number;
  compactRevision: number;
  alarm: boolean;
  keys: Map<string, Entry>;
  /** The key space as it was at the end of each past revision. */
  history: Map<number, Map<string, Entry>>;
  leases: Map<number, Lease>;
  events: KvEvent[];
}

const bytes = (text: string): number => new TextEncoder().encode(text).length;

export class ReferenceKv {
  private state: State = { revision: 1, compactRevision: 0, alarm: false, keys: new Map(), history: new Map(), leases: new Map(), events: [] };

  constructor(private readonly quotaBytes: number) {}

  get revision(): number {
    return this.state.revision;
  }

  get compactRevision(): number {
    return this.state.compactRevision;
  }

  /** Applies one command at log time `time` and returns what the machine should have returned. */
  command(body: CommandBody, time: number): unknown {
    if (body.type === "op") {
      this.expire(time);
      return this.atomically([body.op as KvOp], time)[0];
    }
    if (body.type !== "multi") return null;
    const guard = body.guard as KvTest[];
    if (guard.length > 0 || body.top.length > 0) this.expire(time);
    const succeeded = guard.every((test) => this.holds(test));
    const branch = (succeeded ? body.top : body.fop) as KvOp[];
    return { succeeded, results: this.atomically(branch, time) };
  }

  status(): { revision: number; compactRevision: number; keyCount: number; bytes: number; alarm: boolean; leaseCount: number } {
    let used = 0;
    for (const [key, entry] of this.state.keys) used += bytes(key) + bytes(entry.value);
    return { revision: this.state.revision, compactRevision: this.state.compactRevision, keyCount: this.state.keys.size, bytes: used, alarm: this.state.alarm, leaseCount: this.state.leases.size };
  }

  /** Every key at `revision`, ordered. */
  rangeAt(revision: number): KeyValue[] {
    return [...this.keysAt(revision)].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, entry]) => kvOf(key, entry));
  }

  events(fromRevision: number): KvEvent[] {
    return this.state.events.filter((event) => event.revision >= fromRevision);
  }

  // ------------------------------------------------------------ commands

  private atomically(ops: readonly KvOp[], time: number): KvResult[] {
    const saved = cloneState(this.state);
    let revision: number | undefined;
    const write = (): number => {
      if (revision === undefined) {
        this.state.history.set(this.state.revision, new Map(this.state.keys));
        this.state.revision += 1;
        revision = this.state.revision;
      }
      return revision;
    };
    const results: KvResult[] = [];
    let failure: KvError | undefined;
    for (const op of ops) {
      if (failure !== undefined) {
        results.push({ type: "error", error: kvErrors.txnAborted(failure.code) });
        continue;
      }
      const result = this.execute(op, time, write);
      results.push(result);
      if (result.type === "error") {
        failure = result.error;
        this.state = saved;
        if (failure.code === "QUOTA_EXCEEDED") this.state.alarm = true;
      }
    }
    return results;
  }

  private expire(time: number): void {
    const due = [...this.state.leases].filter(([, lease]) => lease.expiresAt <= time).sort(([idA, a], [idB, b]) => a.expiresAt - b.expiresAt || idA - idB);
    for (const [id] of due) {
      let revision: number | undefined;
      this.revoke(id, () => {
        if (revision === undefined) {
          this.state.history.set(this.state.revision, new Map(this.state.keys));
          revision = ++this.state.revision;
        }
        return revision;
      });
    }
  }

  private revoke(id: number, write: () => number): number {
    const keys = [...this.state.keys].filter(([, entry]) => entry.lease === id).map(([key]) => key).sort();
    for (const key of keys) this.remove(key, write());
    this.state.leases.delete(id);
    return keys.length;
  }

  private execute(op: KvOp, time: number, write: () => number): KvResult {
    const state = this.state;
    switch (op.type) {
      case "put":
      case "incr": {
        const previous = state.keys.get(op.key);
        let value: string;
        if (op.type === "put") value = op.value;
        else {
          if (previous !== undefined && !/^[+-]?\d{1,4096}$/.test(previous.value)) return { type: "error", error: kvErrors.notANumber(op.key) };
          value = (BigInt(previous?.value ?? "0") + BigInt(op.delta)).toString();
        }
        const lease = op.type === "put" ? (op.lease ?? 0) : (op.lease ?? previous?.lease ?? 0);
        if (lease !== 0 && !state.leases.has(lease)) return { type: "error", error: kvErrors.leaseNotFound(lease) };
        const used = this.status().bytes;
        const requested = bytes(op.key) + bytes(value);
        const freed = previous === undefined ? 0 : bytes(op.key) + bytes(previous.value);
        if (state.alarm || used - freed + requested > this.quotaBytes) return { type: "error", error: kvErrors.quotaExceeded(this.quotaBytes, used, requested) };
        const revision = write();
        const entry: Entry = {
          value,
          lease,
          modRevision: revision,
          createRevision: previous?.createRevision ?? revision,
          version: (previous?.version ?? 0) + 1,
        };
        state.keys.set(op.key, entry);
        const event: KvEvent = { type: "put", revision, key: op.key, value, createRevision: entry.createRevision, version: entry.version, lease };
        state.events.push(previous === undefined ? event : { ...event, prevValue: previous.value });
        if (op.type === "incr") return { type: "incr", revision, value };
        return op.prevKv === true && previous !== undefined ? { type: "put", revision, prevKv: kvOf(op.key, previous) } : { type: "put", revision };
      }
      case "delete":
      case "delete-range": {
        const keys = op.type === "delete" ? (state.keys.has(op.key) ? [op.key] : []) : [...state.keys.keys()].filter((key) => key >= op.start && (op.end === undefined || key < op.end)).sort();
        const prevKvs = keys.map((key) => kvOf(key, state.keys.get(key) as Entry));
        const revision = keys.length === 0 ? state.revision : write();
        for (const key of keys) this.remove(key, revision);
        return op.prevKv === true ? { type: "delete", revision, deleted: keys.length, prevKvs } : { type: "delete", revision, deleted: keys.length };
      }
      case "get":
      case "range": {
        const revision = op.revision === undefined || op.revision === 0 ? state.revision : op.revision;
        if (revision > state.revision) return { type: "error", error: kvErrors.futureRevision(revision, state.revision) };
        if (revision < state.compactRevision) return { type: "error", error: kvErrors.compacted(state.compactRevision) };
        const all = this.rangeAt(revision);
        if (op.type === "get") return { type: "get", revision, kv: all.find((kv) => kv.key === op.key) ?? null };
        const inRange = all.filter((kv) => kv.key >= op.start && (op.end === undefined || kv.key < op.end));
        if (op.countOnly === true) return { type: "range", revision, kvs: [], count: inRange.length, more: false };
        const limited = op.limit === undefined || op.limit === 0 ? inRange : inRange.slice(0, op.limit);
        const kvs = op.keysOnly === true ? limited.map((kv) => ({ ...kv, value: "" })) : limited;
        const last = kvs[kvs.length - 1];
        return kvs.length < inRange.length && last !== undefined
          ? { type: "range", revision, kvs, count: inRange.length, more: true, next: `${last.key}\u0000` }
          : { type: "range", revision, kvs, count: inRange.length, more: false };
      }
      case "lease-grant":
        if (state.leases.has(op.id)) return { type: "error", error: kvErrors.leaseExists(op.id) };
        state.leases.set(op.id, { ttlMs: op.ttlMs, expiresAt: time + op.ttlMs });
        return { type: "lease-grant", id: op.id, ttlMs: op.ttlMs, expiresAt: time + op.ttlMs };
      case "lease-keepalive": {
        const lease = state.leases.get(op.id);
        if (lease === undefined) return { type: "error", error: kvErrors.leaseNotFound(op.id) };
        state.leases.set(op.id, { ttlMs: lease.ttlMs, expiresAt: time + lease.ttlMs });
        return { type: "lease-keepalive", id: op.id, ttlMs: lease.ttlMs, expiresAt: time + lease.ttlMs };
      }
      case "lease-revoke": {
        if (!state.leases.has(op.id)) return { type: "error", error: kvErrors.leaseNotFound(op.id) };
        const deleted = this.revoke(op.id, write);
        return { type: "lease-revoke", id: op.id, revision: this.state.revision, deleted };
      }
      case "expire-leases":
        return { type: "expire-leases", revision: state.revision };
      case "compact":
        if (op.revision > state.revision) return { type: "error", error: kvErrors.futureRevision(op.revision, state.revision) };
        if (op.revision <= state.compactRevision) return { type: "error", error: kvErrors.compacted(state.compactRevision) };
        state.compactRevision = op.revision;
        return { type: "compact", compactRevision: op.revision };
    }
  }

  private remove(key: string, revision: number): void {
    const previous = this.state.keys.get(key) as Entry;
    this.state.keys.delete(key);
    this.state.events.push({ type: "delete", revision, key, prevValue: previous.value });
    this.state.alarm = false;
  }

  // ------------------------------------------------------------ guards

  private holds(test: KvTest): boolean {
    const keys = this.state.keys;
    if (test.type === "exists") return keys.has(test.key);
    if (test.type === "absent") return !keys.has(test.key);
    const matching = test.end === undefined ? (keys.has(test.key) ? [keys.get(test.key) as Entry] : []) : [...keys].filter(([key]) => key >= test.key && key < (test.end as string)).map(([, entry]) => entry);
    if (matching.length === 0) return test.target === "value" ? false : satisfies(0, test);
    return matching.every((entry) => satisfies(test.target === "value" ? entry.value : entry[test.target], test));
  }

  private keysAt(revision: number): Map<string, Entry> {
    return revision === this.state.revision ? this.state.keys : (this.state.history.get(revision) ?? new Map());
  }
}

function satisfies(actual: string | number, test: CompareTest): boolean {
  const expected = test.value;
  switch (test.operator) {
    case "equal":
      return actual === expected;
    case "not-equal":
      return actual !== expected;
    case "greater":
      return actual > expected;
    case "less":
      return actual < expected;
  }
}

function kvOf(key: string, entry: Entry): KeyValue {
  return { key, value: entry.value, createRevision: entry.createRevision, modRevision: entry.modRevision, version: entry.version, lease: entry.lease };
}

function cloneState(state: State): State {
  return {
    revision: state.revision,
    compactRevision: state.compactRevision,
    alarm: state.alarm,
    keys: new Map(state.keys),
    history: new Map(state.history),
    leases: new Map(state.leases),
    events: state.events.slice(),
  };
}
