import { setTimeout as sleep } from "node:timers/promises";
import type { SeededRandom } from "@synod/core";
import { type KeyValue, type KvClient, compare } from "@synod/app-kv";
import type { CheckResult, OperationRecord } from "../run-record.js";
import { kvFinalClient, kvWorkerClients } from "./kv-clients.js";
import { NotAppliedError, beforeWriting, classifyWorkloadError } from "./not-applied.js";
import { type Workload, type WorkloadContext, recorded } from "./workload.js";

/** Every account's key starts with it, and nothing else's does: a read of the bank is one range over it. */
const ACCOUNT_PREFIX = "bank/";

/** The share of operations that transfer; the rest read every account. */
const TRANSFER_SHARE = 0.6;

/** The most one transfer moves: small amounts keep most accounts above zero, so few transfers have nothing to move. */
const TRANSFER_AMOUNT_MAX = 20;

/** The pause between two attempts to create the accounts, so a store that refuses at once is not hammered. */
const SETUP_RETRY_MS = 200;

/** Anomalies the check lists before it only counts the rest. */
const ANOMALIES_SHOWN_MAX = 5;

/** One answered read of the whole bank. */
export interface BankRead {
  /** When the answer came (the run's clock). */
  readonly time: number;
  /** Every key the read found under the accounts' prefix, with its value as stored. */
  readonly balances: ReadonlyMap<string, string>;
}

/** An account as a transfer read it. */
interface AccountSeen {
  readonly key: string;
  readonly balance: number;
  /** The guard of the transfer's write: the account is still as read. */
  readonly modRevision: number;
}

/**
 * Jepsen's bank on KV keys, a MultiOp workload: a few accounts created
 * together, then workers that either transfer money between two accounts or
 * read them all (linearizably). A transfer reads both accounts and writes
 * both new balances in one transaction guarded on both modRevisions, so it
 * is atomic across two keys or does not happen; a read must then always see
 * every account, none negative, the total unchanged. A torn transfer (one
 * key written without the other), a lost write, or a stale read of one key
 * beside a fresh one breaks the total.
 */
export class BankWorkload implements Workload {
  readonly name = "bank";
  readonly records: OperationRecord[] = [];
  /** The accounts' keys: `bank/a0`, `bank/a1`... */
  readonly accounts: readonly string[];
  /** What every read must add up to. */
  readonly total: number;
  /** Every read the workers made that answered. */
  private readonly reads: BankRead[] = [];
  private finalRead: BankRead | undefined;
  /** Whether the accounts were created (or found already there): the workers start only then. */
  private setUp = false;
  private readonly clients: KvClient[] = [];

  constructor(
    private readonly context: WorkloadContext,
    accountCount = 5,
    private readonly initialBalance = 100,
    private readonly workers = 4,
  ) {
    if (!(Number.isSafeInteger(accountCount) && accountCount >= 2)) throw new RangeError(`a transfer needs two accounts; got ${accountCount}`);
    if (!(Number.isSafeInteger(initialBalance) && initialBalance >= 0)) throw new RangeError(`the initial balance must be a non-negative integer; got ${initialBalance}`);
    this.accounts = Array.from({ length: accountCount }, (_, index) => `${ACCOUNT_PREFIX}a${index}`);
    this.total = accountCount * initialBalance;
  }

  async run(random: SeededRandom, running: () => boolean): Promise<void> {
    const clients = kvWorkerClients(this.context.urls, this.workers);
    this.clients.push(...clients);
    this.setUp = await this.createAccounts(clients[0] as KvClient, running);
    if (!this.setUp) return;
    await Promise.all(clients.map((client) => this.worker(client, random.fork(), running)));
  }

  /**
   * Puts every account at its initial balance in one transaction, if none
   * exists, retried until one attempt answers (a retry after an attempt
   * with no answer finds the accounts there, which is as good). Gives up
   * only when the run ends first.
   */
  private async createAccounts(client: KvClient, running: () => boolean): Promise<boolean> {
    const balance = String(this.initialBalance);
    while (running()) {
      const { outcome } = await recorded(this.records, this.name, "setup", this.context.clock, classifyWorkloadError, () =>
        client.txn({ if: this.accounts.map((account) => compare.absent(account)), then: this.accounts.map((account) => ({ type: "put", key: account, value: balance })) }),
      );
      if (outcome === "ok") return true;
      await sleep(SETUP_RETRY_MS);
    }
    return false;
  }

  /** One worker's loop until `running()` turns false. */
  private async worker(client: KvClient, random: SeededRandom, running: () => boolean): Promise<void> {
    while (running()) {
      if (random.float() < TRANSFER_SHARE) {
        await recorded(this.records, this.name, "transfer", this.context.clock, classifyWorkloadError, () => this.transfer(client, random));
        continue;
      }
      const { outcome, value: balances, end } = await recorded(this.records, this.name, "read", this.context.clock, classifyWorkloadError, () => this.readBank(client));
      if (outcome === "ok" && balances !== undefined) this.reads.push({ time: end, balances });
    }
  }

  /**
   * Moves a random amount between two distinct accounts: reads both, then
   * writes both new balances if neither changed since. Throws
   * `NotAppliedError` when nothing was written (a read with no answer, both
   * accounts empty, an account changed meanwhile), and the store's or
   * transport's error otherwise (a write with no answer: unknown).
   */
  private async transfer(client: KvClient, random: SeededRandom): Promise<void> {
    const sourceIndex = random.integer(this.accounts.length);
    const targetIndex = (sourceIndex + 1 + random.integer(this.accounts.length - 1)) % this.accounts.length;
    const sourceKey = this.accounts[sourceIndex] as string;
    const targetKey = this.accounts[targetIndex] as string;
    const [sourceValue, targetValue] = await beforeWriting(`the reads of ${sourceKey} and ${targetKey}`, () => Promise.all([client.get(sourceKey), client.get(targetKey)]));
    let source = accountSeen(sourceKey, sourceValue);
    let target = accountSeen(targetKey, targetValue);
    // An empty source sends the money the other way rather than waste the turn.
    if (source.balance === 0) [source, target] = [target, source];
    if (source.balance === 0) throw new NotAppliedError(`${sourceKey} and ${targetKey} are both empty`);
    const amount = 1 + random.integer(Math.min(source.balance, TRANSFER_AMOUNT_MAX));
    const result = await client.txn({
      if: [compare.modRevision(source.key, "equal", source.modRevision), compare.modRevision(target.key, "equal", target.modRevision)],
      then: [
        { type: "put", key: source.key, value: String(source.balance - amount) },
        { type: "put", key: target.key, value: String(target.balance + amount) },
      ],
    });
    if (!result.succeeded) throw new NotAppliedError(`${source.key} or ${target.key} changed after it was read`);
  }

  /** Every key under the accounts' prefix, in one linearizable read. */
  private async readBank(client: KvClient): Promise<ReadonlyMap<string, string>> {
    const result = await client.range({ prefix: ACCOUNT_PREFIX });
    return new Map(result.kvs.map((entry) => [entry.key, entry.value]));
  }

  /** A last read of every account after the faults healed: the money must all be there. */
  async finish(): Promise<void> {
    const client = kvFinalClient(this.context.urls);
    this.clients.push(client);
    const { outcome, value: balances, end } = await recorded(this.records, this.name, "read", this.context.clock, classifyWorkloadError, () => this.readBank(client));
    if (outcome === "ok" && balances !== undefined) this.finalRead = { time: end, balances };
  }

  /** No search here, so no budget to spend: every read is checked on its own. */
  check(): CheckResult[] {
    const [reads, final] = checkBankReads(this.reads, this.finalRead, this.accounts, this.total);
    // Without accounts, the workers never started: say why there is nothing to check.
    if (!this.setUp) return [{ ...reads, detail: `the accounts were never created (no attempt answered); ${reads.detail}` }, final];
    return [reads, final];
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((client) => client.close()));
  }
}

/** An account from a transfer's read; one that is missing or holds no balance stops the transfer before it writes. */
function accountSeen(key: string, stored: KeyValue | null): AccountSeen {
  if (stored === null) throw new NotAppliedError(`${key} is missing`);
  const balance = parseBalance(stored.value);
  if (balance === undefined || balance < 0) throw new NotAppliedError(`${key} holds ${JSON.stringify(stored.value)}, not a balance`);
  return { key, balance, modRevision: stored.modRevision };
}

/** A stored balance: a decimal integer (negative ones included, so the check can name them), or undefined. */
function parseBalance(value: string): number | undefined {
  if (!/^-?\d{1,15}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * Why `balances` cannot be a state of the bank, or undefined when it can:
 * exactly the accounts, each a non-negative integer, adding up to `total`.
 */
export function bankReadAnomaly(balances: ReadonlyMap<string, string>, accounts: readonly string[], total: number): string | undefined {
  const missing = accounts.filter((account) => !balances.has(account));
  if (missing.length > 0) return `${missing.length} of ${accounts.length} accounts missing (${missing.join(", ")})`;
  const strangers = [...balances.keys()].filter((key) => !accounts.includes(key));
  if (strangers.length > 0) return `keys that are no account: ${strangers.join(", ")}`;
  let sum = 0;
  for (const account of accounts) {
    const stored = balances.get(account) as string;
    const balance = parseBalance(stored);
    if (balance === undefined) return `${account} holds ${JSON.stringify(stored)}, not a balance`;
    if (balance < 0) return `${account} is overdrawn at ${balance}`;
    sum += balance;
  }
  return sum === total ? undefined : `the balances total ${sum}, not ${total}`;
}

/** `a0=100 a1=95 a2=105…`: the balances as a person reads them. */
function renderBalances(balances: ReadonlyMap<string, string>): string {
  return [...balances].map(([key, value]) => `${key.startsWith(ACCOUNT_PREFIX) ? key.slice(ACCOUNT_PREFIX.length) : key}=${value}`).join(" ");
}

/**
 * The bank's verdicts: every read the workers made that answered, then the
 * final read (which must have answered), each seeing every account, none
 * negative, and the total unchanged.
 */
export function checkBankReads(reads: readonly BankRead[], finalRead: BankRead | undefined, accounts: readonly string[], total: number): [CheckResult, CheckResult] {
  const anomalies: string[] = [];
  for (const read of reads) {
    const anomaly = bankReadAnomaly(read.balances, accounts, total);
    if (anomaly !== undefined) anomalies.push(`read at ${(read.time / 1_000).toFixed(3)} s: ${anomaly} (${renderBalances(read.balances)})`);
  }
  const more = anomalies.length > ANOMALIES_SHOWN_MAX ? [`… and ${anomalies.length - ANOMALIES_SHOWN_MAX} more`] : [];
  const readsChecked: CheckResult = {
    name: `bank reads see ${accounts.length} accounts totalling ${total} (${reads.length} reads)`,
    passed: anomalies.length === 0,
    detail: anomalies.length === 0 ? "none found wrong" : [`${anomalies.length} of ${reads.length} reads wrong:`, ...anomalies.slice(0, ANOMALIES_SHOWN_MAX), ...more].join("\n"),
  };
  const finalName = `bank final read sees ${accounts.length} accounts totalling ${total}`;
  if (finalRead === undefined) return [readsChecked, { name: finalName, passed: false, detail: "the final read did not answer" }];
  const anomaly = bankReadAnomaly(finalRead.balances, accounts, total);
  return [readsChecked, { name: finalName, passed: anomaly === undefined, detail: `${anomaly ?? "as it should"} (${renderBalances(finalRead.balances)})` }];
}
