/**
 * The benchmark's workload: a trivial key-value map on which every command is
 * one small put (an 8-byte key from a fixed set of 1024, a 16-byte value).
 */
import type { StateMachine } from "../src/host.js";
import type { Command } from "../src/values.js";

export interface PutOp {
  readonly key: string;
  readonly value: string;
}

const KEY_COUNT = 1024;
const KEYS: readonly string[] = Array.from({ length: KEY_COUNT }, (_, index) => `k${String(index).padStart(7, "0")}`);
/** 16 bytes. */
const VALUE = "v123456789abcdef";

/** The put command with sequence number `seq` of `session`. */
export function putCommand(session: string, seq: number): Command {
  return { session, seq, body: { type: "op", op: { key: KEYS[seq % KEY_COUNT] as string, value: VALUE } satisfies PutOp } };
}

export function openSession(session: string): Command {
  return { session, seq: 0, body: { type: "open-session" } };
}

/** A Map of puts; each put returns how many puts were applied so far. */
export class KvMachine implements StateMachine<PutOp, never, number, string, string | undefined> {
  private map = new Map<string, string>();
  private puts = 0;

  apply(op: PutOp): number {
    this.map.set(op.key, op.value);
    this.puts += 1;
    return this.puts;
  }

  test(): boolean {
    return true;
  }

  query(key: string): string | undefined {
    return this.map.get(key);
  }

  snapshot(): () => Uint8Array {
    const copy = JSON.stringify({ puts: this.puts, entries: [...this.map] });
    return () => new TextEncoder().encode(copy);
  }

  restore(data: Uint8Array): void {
    const parsed = JSON.parse(new TextDecoder().decode(data)) as { puts: number; entries: [string, string][] };
    this.puts = parsed.puts;
    this.map = new Map(parsed.entries);
  }

  digest(): string {
    return `${this.puts}:${this.map.size}`;
  }
}
