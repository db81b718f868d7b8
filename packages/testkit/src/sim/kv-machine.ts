import type { ApplyContext, StateMachine } from "@synod/core";

/** Operations of the simulator's KV state machine (the shapes the `kv` and `cas-register` models check). */
export type KvOp =
  | { readonly type: "put"; readonly key: string; readonly value: string }
  | { readonly type: "append"; readonly key: string; readonly value: string }
  | { readonly type: "get"; readonly key: string };

/** MultiOp guards: `equals` holds when the key's value is `value` (`""` for absent). */
export type KvTest = { readonly type: "equals"; readonly key: string; readonly value: string };

export interface KvQuery {
  readonly key: string;
}

/**
 * A small deterministic KV map for the simulator: get/put/append, MultiOp
 * guards, snapshots, and an incremental digest (a rolling hash of every
 * applied operation and result) so replicas can be compared at every slot
 * cheaply.
 */
export class KvMachine implements StateMachine<KvOp, KvTest, string | null, KvQuery, string> {
  private data = new Map<string, string>();
  private rolling = 0x811c9dc5;
  applied = 0;

  apply(op: KvOp, context: ApplyContext): string | null {
    let result: string | null = null;
    switch (op.type) {
      case "put":
        this.data.set(op.key, op.value);
        break;
      case "append":
        this.data.set(op.key, (this.data.get(op.key) ?? "") + op.value);
        break;
      case "get":
        result = this.data.get(op.key) ?? "";
        break;
    }
    this.applied += 1;
    this.rolling = mix(this.rolling, `${context.slot}|${op.type}|${op.key}|${"value" in op ? op.value : ""}|${result ?? ""}`);
    return result;
  }

  test(test: KvTest): boolean {
    return (this.data.get(test.key) ?? "") === test.value;
  }

  query(query: KvQuery): string {
    return this.data.get(query.key) ?? "";
  }

  snapshot(): () => Uint8Array {
    const entries = [...this.data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const state = { entries, rolling: this.rolling, applied: this.applied };
    return () => new TextEncoder().encode(JSON.stringify(state));
  }

  restore(bytes: Uint8Array): void {
    const state = JSON.parse(new TextDecoder().decode(bytes)) as { entries: [string, string][]; rolling: number; applied: number };
    this.data = new Map(state.entries);
    this.rolling = state.rolling;
    this.applied = state.applied;
  }

  digest(): string {
    return this.rolling.toString(16);
  }
}

/** FNV-1a over a string, chained. */
export function mix(hash: number, text: string): number {
  let h = hash >>> 0;
  for (let index = 0; index < text.length; index += 1) h = Math.imul(h ^ text.charCodeAt(index), 16777619) >>> 0;
  return h;
}
