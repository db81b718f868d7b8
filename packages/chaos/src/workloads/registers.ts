import { setTimeout as sleep } from "node:timers/promises";
import type { SeededRandom } from "@synod/core";
import type { KvClient } from "@synod/app-kv";
import { type CasRegisterInput, type CasRegisterOutput, type Operation, casRegisterModel, checkOperations } from "@synod/testkit";
import type { CheckResult, OperationRecord } from "../run-record.js";
import { classifyKvError, kvFinalClient, kvLocalClients, kvWorkerClients } from "./kv-clients.js";
import { type Workload, type WorkloadContext, explainFailure, recorded } from "./workload.js";

/**
 * Compare-and-set registers on a few KV keys: each worker, one operation at
 * a time, reads (linearizable), writes, deletes, or compare-and-sets a key
 * to a value of its own from what it last saw there. Beside them, a reader
 * per replica whose client knows only that replica: it follows a leader
 * hint, and after any failure asks its replica again, so a deposed leader
 * that does not know it yet is still asked (one that answered reads from its
 * own state would show here). Every call is recorded
 * for the linearizability check (per key: keys are independent) and for the
 * report. An operation with no answer stays open-ended in the history: it
 * may have taken effect.
 */
export class RegisterWorkload implements Workload {
  readonly name = "register";
  readonly records: OperationRecord[] = [];
  private readonly history = new Map<string, Operation<CasRegisterInput, CasRegisterOutput>[]>();
  private readonly clients: KvClient[] = [];

  constructor(
    private readonly context: WorkloadContext,
    private readonly keys: readonly string[] = ["r0", "r1", "r2", "r3", "r4"],
    private readonly workers = 4,
  ) {}

  async run(random: SeededRandom, running: () => boolean): Promise<void> {
    const clients = kvWorkerClients(this.context.urls, this.workers);
    const readers = kvLocalClients(this.context.urls);
    this.clients.push(...clients, ...readers);
    await Promise.all([
      ...clients.map((client, worker) => this.worker(worker, client, random.fork(), running)),
      ...readers.map((client, reader) => this.reader(`local${reader}`, client, random.fork(), running)),
    ]);
  }

  /** A reader's loop: linearizable reads of random keys through one replica. */
  private async reader(id: string, client: KvClient, random: SeededRandom, running: () => boolean): Promise<void> {
    while (running()) {
      const key = this.keys[random.integer(this.keys.length)] as string;
      const output = await this.record(id, key, { kind: "read" }, async () => ({ kind: "read", value: (await client.get(key))?.value ?? null }));
      // A replica that refuses at once (down, or no leader to point to) is not asked again in a busy loop.
      if (output === undefined) await sleep(20);
    }
  }

  /** One worker's loop until `running()` turns false. */
  private async worker(worker: number, client: KvClient, random: SeededRandom, running: () => boolean): Promise<void> {
    const known = new Map<string, string | null>();
    for (let index = 0; running(); index += 1) {
      const key = this.keys[random.integer(this.keys.length)] as string;
      const value = `w${worker}.${index}`;
      const roll = random.float();
      let input: CasRegisterInput;
      let call: () => Promise<CasRegisterOutput>;
      if (roll < 0.4) {
        input = { kind: "read" };
        call = async () => ({ kind: "read", value: (await client.get(key))?.value ?? null });
      } else if (roll < 0.65) {
        input = { kind: "write", value };
        call = async () => (await client.put(key, value), { kind: "write" });
      } else if (roll < 0.7) {
        input = { kind: "write", value: null };
        call = async () => (await client.delete(key), { kind: "write" });
      } else {
        const from = known.get(key) ?? null;
        input = { kind: "cas", from, to: value };
        call = async () => {
          const result = await client.compareAndSet(key, from === null ? { version: 0 } : from, value);
          return result.succeeded ? { kind: "cas", succeeded: true } : { kind: "cas", succeeded: false, current: result.current?.value ?? null };
        };
      }
      const output = await this.record(worker, key, input, call);
      if (output?.kind === "read") known.set(key, output.value as string | null);
      else if (output !== undefined && input.kind === "write") known.set(key, input.value as string | null);
      else if (output?.kind === "cas") known.set(key, output.succeeded ? value : (output.current as string | null));
    }
  }

  /** A last linearizable read of every key, after the faults healed: nothing acknowledged may be lost. */
  async finish(): Promise<void> {
    const client = kvFinalClient(this.context.urls);
    this.clients.push(client);
    for (const key of this.keys) await this.record("final", key, { kind: "read" }, async () => ({ kind: "read", value: (await client.get(key))?.value ?? null }));
  }

  /** The per-key linearizability verdicts; an `unknown` (budget spent) fails. */
  check(budgetMs: number): CheckResult[] {
    const keys = [...this.history.keys()];
    return keys.map((key) => {
      const operations = this.history.get(key) ?? [];
      const result = checkOperations(casRegisterModel, operations, { budget: { milliseconds: budgetMs / Math.max(1, keys.length) } });
      const passed = result.verdict === "linearizable";
      return { name: `register ${key} linearizable (${operations.length} operations)`, passed, detail: passed ? result.verdict : explainFailure(casRegisterModel, operations, result) };
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((client) => client.close()));
  }

  private async record(clientId: number | string, key: string, input: CasRegisterInput, call: () => Promise<CasRegisterOutput>): Promise<CasRegisterOutput | undefined> {
    const { outcome, value: output, start, end } = await recorded(this.records, this.name, input.kind, this.context.clock, classifyKvError, call);
    // A failed operation is left out of the history; an unknown read tells nothing; an unknown write stays open.
    if (outcome === "fail" || (outcome === "unknown" && input.kind === "read")) return undefined;
    const operations = this.history.get(key) ?? [];
    this.history.set(key, operations);
    operations.push({ clientId, input, output, call: start, return: outcome === "ok" ? end : Number.POSITIVE_INFINITY });
    return output;
  }
}
