import type { SeededRandom } from "@synod/core";
import { FenceGuard, type HeldLock, LockClient, LockOperationError, type LockSession, LockWaitError } from "@synod/app-lock";
import { ClientError } from "@synod/transport-ws";
import type { CheckResult, OperationRecord } from "../run-record.js";
import { type Workload, type WorkloadContext, recorded } from "./workload.js";

/** One grant a worker was told of: the lock, its token, and when the holder last knew it held it. */
export interface Grant {
  readonly worker: number;
  readonly session: string;
  readonly lock: string;
  readonly token: number;
  /** When the acquire was asked for. */
  readonly askedAt: number;
  /** When the acquire answered: the holder holds from here. */
  readonly grantedAt: number;
  /** The last moment the holder's client said the lock was surely held (`held`), before it acted on it. */
  lastHeldAt: number;
}

/** A write to the fenced resource, in the order the resource saw them. */
export interface FencedWrite {
  readonly worker: number;
  readonly lock: string;
  readonly token: number;
  readonly at: number;
  /** Refused by the fence: a later holder's token had been seen. */
  readonly admitted: boolean;
  /** Written after a pause past the session's TTL, without looking whether the lock was still held. */
  readonly stale: boolean;
}

const SESSION_TTL_MS = 1_200;

/**
 * Chubby-style locks with fencing, on the lock service. Each worker keeps a
 * session (a new one when it expires), takes one of a few locks, and while
 * its client says the lock is surely held writes to a resource beside the
 * lock, through a `FenceGuard` (as a user's storage would). Now and then a
 * holder stops its keepalives and sleeps past its session's TTL, as a process
 * in a long pause would, and then writes without looking: the lock may have
 * moved on, and the fence must refuse it.
 *
 * Checks, per lock: no token granted twice; tokens rise with real time (a
 * grant that answered before another was asked for has the lower token); no
 * two holders at once (a holder's last moment of certainty comes before the
 * next token's grant answered); the resource admitted writes in token order
 * and refused every stale write whose lock had moved on.
 */
export class LockWorkload implements Workload {
  readonly name = "lock";
  readonly records: OperationRecord[] = [];
  private readonly grants: Grant[] = [];
  private readonly writes: FencedWrite[] = [];
  private readonly guard = new FenceGuard();
  private readonly clients: LockClient[] = [];
  private readonly sessions = new Set<LockSession>();

  constructor(
    private readonly context: WorkloadContext,
    private readonly locks: readonly string[] = ["L0", "L1"],
    private readonly workers = 4,
  ) {}

  async run(random: SeededRandom, running: () => boolean): Promise<void> {
    const clients = Array.from({ length: this.workers }, () => new LockClient({ urls: [...this.context.urls], requestTimeoutMs: 500, operationTimeoutMs: 3_000 }));
    this.clients.push(...clients);
    await Promise.all(clients.map((client, worker) => this.worker(worker, client, random.fork(), running)));
  }

  private async worker(worker: number, client: LockClient, random: SeededRandom, running: () => boolean): Promise<void> {
    let session: LockSession | undefined;
    while (running()) {
      if (session === undefined || session.status === "expired") {
        session = await this.open(client);
        if (session === undefined) {
          await sleep(100);
          continue;
        }
      }
      const lock = this.locks[random.integer(this.locks.length)] as string;
      const opened: LockSession = session;
      const acquired = await recorded(this.records, this.name, "acquire", this.context.clock, classifyLockError, () => opened.acquire(lock, { timeoutMs: 1_500 }));
      const held = acquired.value;
      if (held === undefined) {
        // Refused by the service for this session (its state there is not what the client thinks, say after
        // a withdrawal that did not get through): start over with a new session rather than insist.
        if (acquired.error instanceof LockOperationError) {
          opened.stop();
          this.sessions.delete(opened);
          session = undefined;
        }
        if (acquired.outcome !== "ok") await sleep(50);
        continue;
      }
      // A grant whose answer came after the session's local deadline was never trusted: it was sure of nothing.
      const grant: Grant = { worker, session: opened.id, lock, token: held.token, askedAt: acquired.start, grantedAt: acquired.end, lastHeldAt: held.held ? acquired.end : Number.NEGATIVE_INFINITY };
      this.grants.push(grant);
      if (random.float() < 0.1) {
        // A pause longer than the session: keepalives stop, the cluster expires the session, and the holder
        // writes afterwards as if it had never stopped. Then it starts over with a new session.
        opened.stop();
        this.sessions.delete(opened);
        await sleep(SESSION_TTL_MS + 300 + random.integer(700));
        this.write(grant, true);
        session = undefined;
        continue;
      }
      // Most holds are short; one in five lasts two to four seconds, long enough for a fault to strike while
      // the lock is held and for what follows it (an election, a session renewed through it or expired).
      const writes = random.float() < 0.2 ? 20 + random.integer(20) : 1 + random.integer(3);
      for (let write = writes; write > 0 && running(); write -= 1) {
        if (!this.stillHeld(held, grant)) break;
        this.write(grant, false);
        await sleep(writes > 3 ? 100 : random.integer(60));
      }
      if (this.stillHeld(held, grant)) {
        await recorded(this.records, this.name, "release", this.context.clock, classifyLockError, () => held.release());
      }
    }
  }

  async finish(): Promise<void> {}

  check(): CheckResult[] {
    return this.locks.flatMap((lock) => {
      const grants = this.grants.filter((grant) => grant.lock === lock);
      const writes = this.writes.filter((write) => write.lock === lock);
      return [uniqueTokens(lock, grants), tokensRise(lock, grants), oneHolderAtATime(lock, grants), fencedInOrder(lock, writes, grants)];
    });
  }

  async close(): Promise<void> {
    for (const session of this.sessions) session.stop();
    this.sessions.clear();
    await Promise.all(this.clients.splice(0).map((client) => client.close()));
  }

  private async open(client: LockClient): Promise<LockSession | undefined> {
    const opened = await recorded(this.records, this.name, "session", this.context.clock, classifyLockError, () => client.session({ ttlMs: SESSION_TTL_MS }));
    if (opened.value !== undefined) this.sessions.add(opened.value);
    return opened.value;
  }

  /** Whether the client says the lock is surely held now; if so, the grant's last moment of certainty moves here. */
  private stillHeld(held: HeldLock, grant: Grant): boolean {
    if (!held.held) return false;
    grant.lastHeldAt = this.context.clock();
    return true;
  }

  /** A write to the resource, through its fence, at once (nothing between the look at `held` and the write). */
  private write(grant: Grant, stale: boolean): void {
    const admitted = this.guard.admit(grant.lock, grant.token);
    const at = this.context.clock();
    this.writes.push({ worker: grant.worker, lock: grant.lock, token: grant.token, at, admitted, stale });
    this.records.push({ workload: this.name, kind: stale ? "stale write" : "fenced write", start: at, end: at, outcome: admitted ? "ok" : "fail", local: true });
  }
}

/** Refused by the service (`fail`), or no answer (`unknown`: the acquire may have been granted, and is withdrawn by the client). */
function classifyLockError(error: unknown): "fail" | "unknown" | undefined {
  if (error instanceof LockOperationError || error instanceof LockWaitError) return "fail";
  if (error instanceof ClientError) return "unknown";
  return undefined;
}

export function uniqueTokens(lock: string, grants: readonly Grant[]): CheckResult {
  const byToken = new Map<number, Grant>();
  const twice: string[] = [];
  for (const grant of grants) {
    const earlier = byToken.get(grant.token);
    if (earlier !== undefined && earlier.session !== grant.session) twice.push(`token ${grant.token} granted to ${earlier.session} (worker ${earlier.worker}) and ${grant.session} (worker ${grant.worker})`);
    byToken.set(grant.token, grant);
  }
  return { name: `lock ${lock}: no token granted twice (${grants.length} grants)`, passed: twice.length === 0, detail: twice.length === 0 ? "every grant had a token of its own" : twice.slice(0, 20).join("\n") };
}

export function tokensRise(lock: string, grants: readonly Grant[]): CheckResult {
  // A grant that answered before another was asked for has the lower token.
  const byAnswer = [...grants].sort((x, y) => x.grantedAt - y.grantedAt);
  const late: string[] = [];
  let answered = 0;
  let highest: Grant | undefined;
  for (const grant of [...grants].sort((x, y) => x.askedAt - y.askedAt)) {
    for (; answered < byAnswer.length && (byAnswer[answered] as Grant).grantedAt < grant.askedAt; answered += 1) {
      const earlier = byAnswer[answered] as Grant;
      if (highest === undefined || earlier.token > highest.token) highest = earlier;
    }
    if (highest !== undefined && grant.token <= highest.token) late.push(`token ${grant.token}, asked for at ${ms(grant.askedAt)}, after token ${highest.token} had been granted at ${ms(highest.grantedAt)}`);
  }
  return { name: `lock ${lock}: tokens rise with time`, passed: late.length === 0, detail: late.length === 0 ? "each grant's token was higher than that of every grant answered before it was asked for" : late.slice(0, 20).join("\n") };
}

export function oneHolderAtATime(lock: string, grants: readonly Grant[]): CheckResult {
  // By token: no holder may still be sure of the lock once a higher token's grant has answered.
  const overlaps: string[] = [];
  let surest: Grant | undefined;
  for (const grant of [...grants].sort((x, y) => x.token - y.token)) {
    if (surest !== undefined && surest.lastHeldAt > grant.grantedAt) {
      overlaps.push(`${surest.session} (token ${surest.token}) was sure it held ${lock} until ${ms(surest.lastHeldAt)}, but ${grant.session} was granted it (token ${grant.token}) at ${ms(grant.grantedAt)}`);
    }
    if (surest === undefined || grant.lastHeldAt > surest.lastHeldAt) surest = grant;
  }
  return { name: `lock ${lock}: one holder at a time`, passed: overlaps.length === 0, detail: overlaps.length === 0 ? `${grants.length} holders, none sure of the lock while another held it` : overlaps.slice(0, 20).join("\n") };
}

export function fencedInOrder(lock: string, writes: readonly FencedWrite[], grants: readonly Grant[]): CheckResult {
  const problems: string[] = [];
  const granted = new Set(grants.map((grant) => grant.token));
  let highest = 0;
  for (const write of writes) {
    if (!granted.has(write.token)) problems.push(`a write with token ${write.token}, never granted`);
    if (write.admitted && write.token < highest) problems.push(`the resource admitted token ${write.token} after token ${highest}`);
    // A write that looked at `held` first must never be refused: its lock had not moved on.
    if (!write.admitted && !write.stale) problems.push(`worker ${write.worker} was sure it held ${lock} (token ${write.token}) at ${ms(write.at)}, but token ${highest} had written already`);
    if (write.admitted) highest = Math.max(highest, write.token);
  }
  const stale = writes.filter((write) => write.stale);
  const refused = stale.filter((write) => !write.admitted).length;
  return {
    name: `lock ${lock}: fenced writes in token order (${writes.length} writes)`,
    passed: problems.length === 0,
    detail: problems.length === 0 ? `admitted in token order; ${stale.length} writes after a pause past the session, ${refused} of them refused (the lock had moved on)` : problems.slice(0, 20).join("\n"),
  };
}

const ms = (time: number) => `${(time / 1_000).toFixed(3)} s`;
const sleep = (milliseconds: number) => new Promise<void>((resolve) => setTimeout(resolve, milliseconds));
