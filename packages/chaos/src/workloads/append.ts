import type { SeededRandom } from "@synod/core";
import type { KvClient } from "@synod/app-kv";
import { type Operation, checkOperations } from "@synod/testkit";
import type { CheckResult, OperationRecord } from "../run-record.js";
import { kvFinalClient, kvWorkerClients } from "./kv-clients.js";
import { type ListInput, type ListOutput, listAppendModel, renderList } from "./list-model.js";
import { NotAppliedError, beforeWriting, classifyWorkloadError } from "./not-applied.js";
import { type Workload, type WorkloadContext, explainFailure, recorded } from "./workload.js";

/** Guarded writes one append sends before it gives up on a contended key (it then certainly did not take effect). */
const APPEND_ATTEMPTS_MAX = 10;

/**
 * Elements a list may reach, by default, before the workers move on to the
 * key's next generation (`l0`, then `l0.1`, `l0.2`...). Every append
 * rewrites the whole value and the store keeps old revisions (100 000 by
 * default), so unbounded lists would cost memory quadratic in the run's
 * appends (a 180 s run makes tens of thousands); the checker's states and a
 * failing history in the report grow with the list too. The cap is soft: an
 * append that finds the list full still goes through, and only then do the
 * workers move on, so every append is a real one and a list ends at most
 * about one element per worker over the cap.
 */
const LIST_ELEMENTS_MAX = 100;

/** The share of operations that append; the rest read. */
const APPEND_SHARE = 0.6;

/** Anomalies a check lists before it only counts the rest. */
const ANOMALIES_SHOWN_MAX = 5;

/** The key of one generation of a list: `l0`, `l0.1`, `l0.2`... */
function generationKey(list: string, generation: number): string {
  return generation === 0 ? list : `${list}.${generation}`;
}

/** A list's elements from its stored value: joined by spaces (elements have none), absent or empty for `[]`. */
function parseList(value: string | undefined): string[] {
  return value === undefined || value === "" ? [] : value.split(" ");
}

async function readList(client: KvClient, key: string): Promise<ListOutput & { kind: "read" }> {
  return { kind: "read", elements: parseList((await client.get(key))?.value) };
}

/**
 * Jepsen's list-append on KV keys: each worker, one operation at a time,
 * appends a unique element (`w3.17`) to a list, or reads a list (both
 * linearizable). An append is a read and a compare-and-set on the key's
 * modRevision, retried from the value the refused write saw when another
 * append won the race. Every operation is recorded for the report and, per
 * key, for the linearizability check; the cheaper direct checks (no element
 * twice, reads are prefixes of the final read, no acknowledged append lost)
 * say what went wrong in a line. An append with no answer stays open-ended
 * in the history and is never retried: it may have taken effect, and a
 * second copy of its element would make two appends indistinguishable.
 */
export class AppendWorkload implements Workload {
  readonly name = "append";
  readonly records: OperationRecord[] = [];
  private readonly history = new Map<string, Operation<ListInput, ListOutput>[]>();
  /** Every key an operation was issued on, every generation of every list, for the final reads. */
  private readonly keysUsed = new Set<string>();
  /** The final read of each key that answered. */
  private readonly finalReads = new Map<string, readonly string[]>();
  /**
   * The generation the workers use for each list, shared among them so they
   * move on together. Only a hint of where to write: each key is checked on
   * its own, whichever generation it is.
   */
  private readonly generations: number[];
  private readonly clients: KvClient[] = [];

  constructor(
    private readonly context: WorkloadContext,
    private readonly lists: readonly string[] = ["l0", "l1", "l2", "l3"],
    private readonly workers = 4,
    private readonly listElementsMax = LIST_ELEMENTS_MAX,
  ) {
    this.generations = lists.map(() => 0);
  }

  async run(random: SeededRandom, running: () => boolean): Promise<void> {
    const clients = kvWorkerClients(this.context.urls, this.workers);
    this.clients.push(...clients);
    await Promise.all(clients.map((client, worker) => this.worker(worker, client, random.fork(), running)));
  }

  /** One worker's loop until `running()` turns false. */
  private async worker(worker: number, client: KvClient, random: SeededRandom, running: () => boolean): Promise<void> {
    for (let index = 0; running(); index += 1) {
      const list = random.integer(this.lists.length);
      const generation = this.generations[list] as number;
      const key = generationKey(this.lists[list] as string, generation);
      this.keysUsed.add(key);
      // The index makes the element unique within the run: no append is ever retried under the same element.
      const input: ListInput = random.float() < APPEND_SHARE ? { kind: "append", element: `w${worker}.${index}` } : { kind: "read" };
      let lengthSeen = 0;
      await this.record(worker, key, input, async () => {
        if (input.kind === "read") {
          const output = await readList(client, key);
          lengthSeen = output.elements.length;
          return output;
        }
        lengthSeen = await this.append(client, key, input.element);
        return { kind: "append" };
      });
      if (lengthSeen >= this.listElementsMax) this.generations[list] = Math.max(this.generations[list] as number, generation + 1);
    }
  }

  /**
   * Appends `element` to the list at `key`: reads it, then writes it back one
   * element longer if nobody wrote it since. Returns the list's new length.
   * Throws `NotAppliedError` when it certainly did not take effect, and the
   * store's or transport's error otherwise (a write with no answer: unknown).
   */
  private async append(client: KvClient, key: string, element: string): Promise<number> {
    let current = await beforeWriting(`the read of ${key}`, () => client.get(key));
    for (let attempt = 1; ; attempt += 1) {
      const elements = parseList(current?.value);
      const expected = current === null ? { version: 0 } : { modRevision: current.modRevision };
      const result = await client.compareAndSet(key, expected, [...elements, element].join(" "));
      if (result.succeeded) return elements.length + 1;
      if (attempt === APPEND_ATTEMPTS_MAX) throw new NotAppliedError(`${key} changed under each of ${APPEND_ATTEMPTS_MAX} attempts to append ${element}`);
      // The refused write read the key in the same step (etcd's `else: [get]`): as fresh as a new read, one round trip fewer.
      current = result.current;
    }
  }

  /** A last linearizable read of every key used, after the faults healed: nothing acknowledged may be lost. */
  async finish(): Promise<void> {
    const client = kvFinalClient(this.context.urls);
    this.clients.push(client);
    for (const key of this.keysUsed) {
      const output = await this.record("final", key, { kind: "read" }, () => readList(client, key));
      if (output?.kind === "read") this.finalReads.set(key, output.elements);
    }
  }

  /** Linearizability of every key (an `unknown` fails), then the direct checks. */
  check(budgetMs: number): CheckResult[] {
    return [checkListsLinearizable(this.history, budgetMs), ...checkListReads(this.history, this.finalReads)];
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((client) => client.close()));
  }

  private async record(clientId: number | string, key: string, input: ListInput, call: () => Promise<ListOutput>): Promise<ListOutput | undefined> {
    const { outcome, value: output, start, end } = await recorded(this.records, this.name, input.kind, this.context.clock, classifyWorkloadError, call);
    // A failed operation is left out of the history; an unknown read tells nothing; an unknown append stays open.
    if (outcome === "fail" || (outcome === "unknown" && input.kind === "read")) return undefined;
    const operations = this.history.get(key) ?? [];
    this.history.set(key, operations);
    operations.push({ clientId, input, output, call: start, return: outcome === "ok" ? end : Number.POSITIVE_INFINITY });
    return output;
  }
}

/**
 * One verdict for every key's history against the list-append model. Keys
 * are checked one after another, each given an even share of the budget
 * still left, so the time small keys do not use goes to the rest; keys left
 * undecided then share what remains, and an `unknown` after that fails.
 */
export function checkListsLinearizable(histories: ReadonlyMap<string, readonly Operation<ListInput, ListOutput>[]>, budgetMs: number): CheckResult {
  let budgetLeftMs = budgetMs;
  let operationCount = 0;
  const failures: string[] = [];
  let undecided: string[] = [];
  const check = (key: string, operations: readonly Operation<ListInput, ListOutput>[], keysLeft: number) => {
    const result = checkOperations(listAppendModel, operations, { budget: { milliseconds: Math.max(1, budgetLeftMs / keysLeft) } });
    budgetLeftMs -= result.statistics.elapsedMilliseconds;
    // The first failure is shown whole (the shortest failing part of its history); later ones only by key.
    if (result.verdict === "not linearizable") failures.push(failures.length === 0 ? `${key}: ${explainFailure(listAppendModel, operations, result)}` : key);
    else if (result.verdict === "unknown") undecided.push(key);
  };
  let keysLeft = histories.size;
  for (const [key, operations] of histories) {
    operationCount += operations.length;
    check(key, operations, keysLeft);
    keysLeft -= 1;
  }
  const second = [...undecided];
  undecided = [];
  second.forEach((key, index) => check(key, histories.get(key) ?? [], second.length - index));
  const name = `append lists linearizable (${histories.size} keys, ${operationCount} operations)`;
  if (failures.length === 0 && undecided.length === 0) return { name, passed: true, detail: "linearizable" };
  const lines = [...failures.slice(0, 1), ...(failures.length > 1 ? [`also not linearizable: ${failures.slice(1).join(", ")}`] : [])];
  if (undecided.length > 0) lines.push(`undecided within the ${budgetMs} ms budget: ${undecided.join(", ")}`);
  return { name, passed: false, detail: lines.join("\n") };
}

/**
 * The direct checks, cheap and with a plain message: every answered read
 * holds each element at most once and only elements some append could have
 * written; every read is a prefix of the key's final read (or, without one,
 * of its longest read); every acknowledged append is in its key's final read.
 */
export function checkListReads(histories: ReadonlyMap<string, readonly Operation<ListInput, ListOutput>[]>, finalReads: ReadonlyMap<string, readonly string[]>): CheckResult[] {
  const malformed: string[] = [];
  const unordered: string[] = [];
  const lost: string[] = [];
  let readCount = 0;
  let acknowledgedCount = 0;
  for (const [key, operations] of histories) {
    const appended = new Set<string>();
    const reads: (readonly string[])[] = [];
    for (const { input, output } of operations) {
      if (input.kind === "append") appended.add(input.element);
      else if (output?.kind === "read") reads.push(output.elements);
    }
    const finalRead = finalReads.get(key);
    const reference = finalRead ?? reads.reduce<readonly string[]>((longest, elements) => (elements.length > longest.length ? elements : longest), []);
    const referenceName = finalRead === undefined ? "the longest read" : "the final read";
    for (const elements of reads) {
      readCount += 1;
      const repeated = firstRepeated(elements);
      if (repeated !== undefined) malformed.push(`${key}: ${repeated} appears twice in ${renderList(elements)}`);
      const stranger = elements.find((element) => !appended.has(element));
      if (stranger !== undefined) malformed.push(`${key}: ${stranger} was read, but no append of it can have taken effect`);
      const mismatch = prefixMismatch(elements, reference, referenceName);
      if (mismatch !== undefined) unordered.push(`${key}: a read of ${elements.length} elements is not a prefix of ${referenceName} of ${reference.length}: ${mismatch}`);
    }
    const finalElements = new Set(finalRead);
    for (const { input, output } of operations) {
      if (input.kind !== "append" || output === undefined) continue;
      acknowledgedCount += 1;
      if (finalRead === undefined) lost.push(`${key}: acknowledged append ${input.element} unverified: the final read did not answer`);
      else if (!finalElements.has(input.element)) lost.push(`${key}: acknowledged append ${input.element} is missing from the final read ${renderList(finalRead)}`);
    }
  }
  return [
    verdict(`append reads hold each element once, and only appended ones (${readCount} reads)`, malformed),
    verdict(`append reads are prefixes of the final read (${readCount} reads)`, unordered),
    verdict(`append acknowledged appends are in the final reads (${acknowledgedCount} appends)`, lost),
  ];
}

function verdict(name: string, anomalies: readonly string[]): CheckResult {
  if (anomalies.length === 0) return { name, passed: true, detail: "none found" };
  const more = anomalies.length > ANOMALIES_SHOWN_MAX ? [`… and ${anomalies.length - ANOMALIES_SHOWN_MAX} more`] : [];
  return { name, passed: false, detail: [...anomalies.slice(0, ANOMALIES_SHOWN_MAX), ...more].join("\n") };
}

function firstRepeated(elements: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const element of elements) {
    if (seen.has(element)) return element;
    seen.add(element);
  }
  return undefined;
}

/** Why `elements` is not a prefix of `reference`, or undefined when it is. */
function prefixMismatch(elements: readonly string[], reference: readonly string[], referenceName: string): string | undefined {
  for (let position = 0; position < elements.length; position += 1) {
    if (position >= reference.length) return `it goes on past its end with ${elements[position]}`;
    if (elements[position] !== reference[position]) return `at position ${position} it holds ${elements[position]}, ${referenceName} ${reference[position]}`;
  }
  return undefined;
}
