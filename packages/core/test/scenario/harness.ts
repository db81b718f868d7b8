/**
 * A small interpreter for scenario files, after etcd-io/raft's `testdata/*.txt`:
 * blocks of `#` comments, a command line, `----`, the expected output, a blank
 * line. Replicas share an explicit message pool: nothing is sent, delivered,
 * persisted or applied unless a command says so.
 *
 *   cluster a b c [seed=1] [option=value...]  replicas with `ReplicaOptions` overrides
 *   campaign a / tick a [n] / tick-heartbeat a tick a (until it stands), processing after each tick
 *   run [n]                                   n rounds: tick everyone, deliver everything; prints
 *                                             only events (roles, applies, reads, aborts)
 *   propose a x [y...] / read a               one command per op (session "s"); a read-index read
 *   process [a...]                            drain the Readies of the named (or all) replicas
 *   deliver [from=a,b] [to=c] [type=t,u] [drop] [hold]
 *                                             deliver (or drop) matching pooled messages, then
 *                                             process the receivers (unless `hold`)
 *   deliver-all / pool                        deliver until quiet / list the messages in flight
 *   partition a | b c / heal                  messages across groups are lost
 *   crash a [after-send] [wiped]              restart from the durable image (after-send: first
 *                                             send the pending Ready's `messages`, then die;
 *                                             wiped: the image is lost, and it restarts rebuilding)
 *   status [a...] / log a                     role, promise, leader, firstUnchosen / slot records
 *
 * `process` prints what a driver does, in the `Ready` contract's order:
 * `messages`, `persist`, `after-persist` messages, `apply`, reads, aborts.
 * Role changes print as they happen. After every input the harness runs
 * `checkInvariants()` and checks that no vote leaves before its persist and
 * that all replicas apply the same value in each slot.
 */
import { ZERO_BALLOT, formatBallot } from "../../src/ballot.js";
import type { Message } from "../../src/messages.js";
import { SeededRandom } from "../../src/random.js";
import { type PersistBatch, type Ready, Replica, type ReplicaOptions } from "../../src/replica.js";
import { DurableImage, isEmptyBatch } from "../../src/storage.js";
import type { Command, SlotRecord, Value } from "../../src/values.js";

/** One replica, its durable image (what survives `crash`), and the role last printed. */
interface Node {
  replica: Replica;
  readonly image: DurableImage;
  readonly random: SeededRandom;
  lastRole: string;
}

const ballot = formatBallot;

const formatOp = (command: Command): string => (command.body.type === "op" ? String(command.body.op) : command.body.type);

export const formatValue = (value: Value): string => {
  if (value.type === "noop" || value.type === "check") return value.type;
  if (value.type === "config") return `config(${value.change.expected}:${value.change.voters.join(",")}/${value.change.learners.join(",")})`;
  return `batch(${value.commands.map(formatOp).join(",")})`;
};

export function formatRecord(record: SlotRecord): string {
  return `${record.slot}:${ballot(record.ballot)}:${formatValue(record.value)}${record.chosen ? ":chosen" : ""}`;
}

const formatEntries = (entries: readonly { slot: number; value: Value }[]): string =>
  `[${entries.map((entry) => `${entry.slot}:${formatValue(entry.value)}`).join(" ")}]`;

export function formatMessage(m: Message): string {
  if (m.type === "snapshot-request") return `${m.from}->${m.to} ${m.type} min=${m.minSlot}${m.resume === undefined ? "" : ` resume=${m.resume.slot}@${m.resume.offset}`}`;
  if (m.type === "snapshot-chunk") return `${m.from}->${m.to} ${m.type} slot=${m.slot} offset=${m.offset}/${m.size}`;
  if (m.type === "digest") return `${m.from}->${m.to} ${m.type} slot=${m.slot} ${m.digest}`;
  const head = `${m.from}->${m.to} ${m.type} ballot=${ballot(m.ballot)}`;
  switch (m.type) {
    case "pre-vote": return head;
    case "pre-vote-reply": return `${head} ${m.granted ? "granted" : "refused"}`;
    case "prepare": return `${head} from=${m.fromSlot}${m.transfer === true ? " transfer" : ""}`;
    case "promise": {
      const start = m.logStart > 0 ? ` logStart=${m.logStart}` : "";
      const records = `[${m.entries.map(formatRecord).join(" ")}]`;
      return `${head} from=${m.fromSlot} next=${m.nextSlot} fu=${m.firstUnchosen}${start} entries=${records}${m.noMoreAccepted ? " noMoreAccepted" : ""}`;
    }
    case "accept": return `${head} fu=${m.firstUnchosen} entries=${formatEntries(m.entries)}`;
    case "accepted": return `${head} slots=[${m.slots.join(",")}] fu=${m.firstUnchosen}`;
    case "reject": return `${head} promised=${ballot(m.promised)} reason=${m.reason}`;
    case "success": return `${head} fu=${m.firstUnchosen} entries=${formatEntries(m.entries)}`;
    case "heartbeat": return `${head} round=${m.round} fu=${m.firstUnchosen}${m.horizon === undefined ? "" : ` horizon=${m.horizon.slot}`}`;
    case "heartbeat-reply": return `${head} round=${m.round} fu=${m.firstUnchosen}${m.rebuilding === undefined ? "" : " rebuilding"}`;
    case "take-over": return head;
    case "need-snapshot": return `${head} logStart=${m.logStart}`;
  }
}

function formatPersist(batch: PersistBatch): string {
  const promised = batch.promised === undefined ? [] : [`promised=${ballot(batch.promised)}`];
  const records = batch.records.length === 0 ? [] : [`records=[${batch.records.map(formatRecord).join(" ")}]`];
  const chosen = batch.chosen.length === 0 ? [] : [`chosen=[${batch.chosen.join(" ")}]`];
  const truncate = batch.truncateBefore === undefined ? [] : [`truncateBefore=${batch.truncateBefore}`];
  const rebuilt = batch.rebuilt === true ? ["rebuilt"] : [];
  return [...promised, ...records, ...chosen, ...truncate, ...rebuilt].join(" ");
}

function errorName(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const hint = (error as { leaderHint?: string }).leaderHint;
  return `${error.constructor.name}${hint === undefined ? "" : ` (hint ${hint})`}`;
}

const FLAGS = new Set(["drop", "hold", "after-send", "wiped"]);

/** A command line, split: replica ids (and ops), a count, key=value filters and flags. */
interface Arguments {
  readonly words: readonly string[];
  readonly ids: readonly string[];
  readonly count: number | undefined;
  readonly keys: ReadonlyMap<string, string>;
  readonly flags: ReadonlySet<string>;
}

function only(ids: readonly string[]): string {
  if (ids.length !== 1 || ids[0] === undefined) throw new Error(`expected one replica, got ${JSON.stringify(ids)}`);
  return ids[0];
}

/** A vote that vouches for durable acceptor state: it must never leave before its persist. */
const isVote = (m: Message): boolean => m.type === "promise" || (m.type === "accepted" && m.slots.length > 0);

export class Scenario {
  private readonly nodes = new Map<string, Node>();
  private voters: string[] = [];
  private options: Partial<ReplicaOptions> = {};
  private pool: Message[] = [];
  /** Partition group of each replica; undefined when the network is whole. */
  private groups: Map<string, number> | undefined;
  private readonly chosenValues = new Map<number, string>();
  private nowMs = 0;
  private seq = 0;
  private out: string[] = [];
  private preVoteSent = false;
  private quiet = false;

  /** The commands, by name (see the file comment). */
  private readonly commands: Record<string, (args: Arguments) => void> = {
    cluster: (a) => this.cluster(a.ids, a.keys),
    campaign: (a) => this.campaign(only(a.ids)),
    tick: (a) => this.tick(only(a.ids), a.count ?? 1),
    "tick-heartbeat": (a) => this.tick(only(a.ids), this.options.heartbeatTicks ?? 2),
    run: (a) => this.runRounds(a.count ?? 1),
    propose: (a) => this.propose(a.ids[0] ?? "", a.ids.slice(1)),
    read: (a) => this.read(only(a.ids)),
    process: (a) => this.each(a.ids, (id) => this.process(id)),
    deliver: (a) => this.deliver(a.keys, a.flags.has("drop"), a.flags.has("hold")),
    "deliver-all": () => this.deliverAll(),
    pool: () => this.pool.forEach((message) => this.print(formatMessage(message))),
    partition: (a) => this.partition(a.words),
    heal: () => (this.groups = undefined),
    crash: (a) => this.crash(only(a.ids), a.flags.has("after-send"), a.flags.has("wiped")),
    status: (a) => this.each(a.ids, (id) => this.status(id)),
    log: (a) => this.log(only(a.ids)),
  };

  /** Runs one command line and returns its output ("ok" when it printed nothing). */
  run(line: string): string {
    [this.out, this.quiet] = [[], false];
    const [name = "", ...words] = line.trim().split(/\s+/);
    const command = this.commands[name];
    if (command === undefined) throw new Error(`unknown command ${JSON.stringify(name)}`);
    const plain = words.filter((word) => !word.includes("=") && !FLAGS.has(word) && word !== "|");
    const count = plain.find((word) => /^\d+$/.test(word));
    command({
      words,
      ids: plain.filter((word) => !/^\d+$/.test(word)),
      count: count === undefined ? undefined : Number(count),
      keys: new Map(words.filter((word) => word.includes("=")).map((word) => word.split("=", 2) as [string, string])),
      flags: new Set(words.filter((word) => FLAGS.has(word))),
    });
    return this.out.length === 0 ? "ok" : this.out.join("\n");
  }

  // ------------------------------------------------------------ commands

  /** Starts a fresh cluster, forgetting any earlier one in the same file. */
  private cluster(ids: readonly string[], keys: ReadonlyMap<string, string>): void {
    this.nodes.clear();
    this.chosenValues.clear();
    [this.pool, this.groups, this.voters, this.options] = [[], undefined, [...ids], {}];
    for (const [key, value] of keys) if (key !== "seed") (this.options as Record<string, number>)[key] = Number(value);
    const seed = Number(keys.get("seed") ?? 1);
    ids.forEach((id, index) => {
      const random = new SeededRandom(seed * 100 + index);
      const image = new DurableImage(ZERO_BALLOT);
      this.nodes.set(id, { replica: this.newReplica(id, random, image), image, random, lastRole: "follower" });
    });
  }

  private newReplica(id: string, random: SeededRandom, image: DurableImage): Replica {
    const stored = image.toStoredState();
    const recovered = { promised: stored.promised, records: stored.records, logStart: stored.logStart, appliedThrough: stored.logStart - 1, rebuilding: stored.rebuilding === true };
    return new Replica({ id, voters: this.voters, random, clock: { now: () => this.nowMs }, options: this.options }, recovered);
  }

  /** Ticks `id` until it stands: it sends pre-votes, or (alone enough to need none) leaves the follower role. */
  private campaign(id: string): void {
    const { replica } = this.node(id);
    const wasFollower = replica.status().role === "follower";
    this.preVoteSent = false;
    for (let ticks = 0; !this.preVoteSent && !(wasFollower && replica.status().role !== "follower"); ticks += 1) {
      if (ticks === 100) throw new Error(`campaign ${id}: never stood`);
      this.tick(id, 1);
    }
  }

  private tick(id: string, count: number): void {
    const node = this.node(id);
    for (let i = 0; i < count; i += 1) {
      this.nowMs += 10;
      this.input(id, () => node.replica.tick());
      this.process(id);
    }
  }

  /** Healthy time passing: each round ticks every replica, then delivers what is in flight. Prints only events. */
  private runRounds(rounds: number): void {
    this.quiet = true; // reset by the next `run(line)` should this throw
    for (let round = 0; round < rounds; round += 1) {
      this.each([], (id) => this.tick(id, 1));
      this.deliver(new Map(), false, false);
    }
    this.quiet = false;
  }

  private propose(id: string, ops: readonly string[]): void {
    for (const op of ops) {
      const command: Command = { session: "s", seq: ++this.seq, body: { type: "op", op } };
      this.attempt(id, `propose ${id} ${op}`, (replica) => replica.propose(command));
    }
  }

  private read(id: string): void {
    this.attempt(id, `read ${id}`, (replica) => this.print(`read ${id} id=${replica.read()}`));
  }

  /** An input that may throw a typed error (a follower refusing a proposal), printed as its name. */
  private attempt(id: string, what: string, action: (replica: Replica) => void): void {
    this.input(id, () => {
      try {
        action(this.node(id).replica);
      } catch (error) {
        this.print(`${what}: ${errorName(error)}`);
      }
    });
  }

  private deliver(keys: ReadonlyMap<string, string>, drop: boolean, hold: boolean): void {
    const allowed = (key: string, value: string): boolean => keys.get(key)?.split(",").includes(value) ?? true;
    const matches = (m: Message): boolean => allowed("from", m.from) && allowed("to", m.to) && allowed("type", m.type);
    const chosen = this.pool.filter(matches);
    this.pool = this.pool.filter((m) => !matches(m));
    if (chosen.length === 0 && !this.quiet) this.print("no messages");
    const receivers = new Set<string>();
    for (const message of chosen) {
      if (drop) this.print(`dropped ${formatMessage(message)}`);
      else if (this.cut(message.from, message.to)) this.print(`lost ${formatMessage(message)} (partition)`);
      else {
        this.input(message.to, () => this.node(message.to).replica.step(message));
        receivers.add(message.to);
      }
    }
    if (!hold) for (const id of [...receivers].sort()) this.process(id);
  }

  private deliverAll(): void {
    for (let round = 0; this.pool.length > 0; round += 1) {
      if (round === 100) throw new Error("deliver-all: still not quiet after 100 rounds");
      this.deliver(new Map(), false, false);
    }
  }

  private partition(words: readonly string[]): void {
    const groups = (this.groups = new Map());
    words.join(" ").split("|").forEach((group, index) => group.trim().split(/\s+/).forEach((id) => groups.set(id, index)));
  }

  /**
   * Restarts `id` from its durable image. With `after-send`, it first takes
   * its pending Ready and sends the messages that may leave before the disk
   * write, then dies before the write completes.
   */
  private crash(id: string, afterSend: boolean, wiped: boolean): void {
    const node = this.node(id);
    if (afterSend && node.replica.hasReady()) {
      const ready = node.replica.ready();
      for (const message of ready.messages) this.send(message, "");
      if (!isEmptyBatch(ready.persist)) this.print(`not persisted ${id} ${formatPersist(ready.persist)}`);
      for (const message of [...ready.messagesAfterPersist, ...ready.selfAfterPersist]) this.print(`never sent ${formatMessage(message)}`);
    }
    if (wiped) node.image.reset(ZERO_BALLOT);
    node.replica = this.newReplica(id, node.random, node.image);
    node.lastRole = "follower";
    const stored = node.image.toStoredState();
    this.print(`crash ${id}: restarted with promised=${ballot(stored.promised)} records=[${stored.records.map(formatRecord).join(" ")}]`);
  }

  private status(id: string): void {
    const s = this.node(id).replica.status();
    const queued = s.queuedCommands > 0 ? ` queued=${s.queuedCommands}` : "";
    const where = `firstUnchosen=${s.firstUnchosen} lastSlot=${s.lastSlot} applied=${s.handedOutThrough}${queued}`;
    const lease = s.leaseRemainingMs === undefined ? "" : ` lease=${Math.round(s.leaseRemainingMs)}ms`;
    this.print(`${id} ${s.role} promised=${ballot(s.promised)} leader=${s.leader ?? "-"} ${where}${lease}${s.rebuilding ? " rebuilding" : ""}`);
  }

  /** The slot records of `id`, one a line; `-` for a slot it holds nothing for. */
  private log(id: string): void {
    const { replica } = this.node(id);
    const { logStart, lastSlot } = replica.status();
    if (lastSlot < logStart) this.print("empty");
    for (let slot = logStart; slot <= lastSlot; slot += 1) {
      const record = replica.slotRecord(slot);
      this.print(record === undefined ? `${slot}: -` : formatRecord(record));
    }
  }

  // ------------------------------------------------------------ the driver loop

  /** Drains `id`'s Readies, acting on each in the order the `Ready` contract prescribes. */
  private process(id: string): void {
    const node = this.node(id);
    for (let round = 0; node.replica.hasReady(); round += 1) {
      if (round === 100) throw new Error(`process ${id}: replica never quiesced`);
      const ready: Ready = node.replica.ready();
      for (const message of ready.messages) {
        if (isVote(message)) this.print(`VIOLATION: ${message.type} sent before its persist`, true);
        this.send(message, "");
      }
      if (!isEmptyBatch(ready.persist)) {
        node.image.applyBatch(ready.persist);
        this.print(`persist ${id} ${formatPersist(ready.persist)}`);
      }
      for (const message of ready.messagesAfterPersist) this.send(message, "after-persist ");
      for (const message of ready.selfAfterPersist) this.print(`after-persist ${formatMessage(message)}`);
      for (const entry of ready.chosen) this.apply(id, entry.slot, formatValue(entry.value));
      for (const read of ready.reads) this.print(`read-ready ${id} id=${read.id} slot=${read.slot}`, true);
      for (const read of ready.failedReads) this.print(`read-failed ${id} id=${read.id}: ${errorName(read.error)}`, true);
      for (const { command, error } of ready.aborted) this.print(`aborted ${id} ${formatOp(command)}: ${errorName(error)}`, true);
      this.input(id, () => node.replica.advance(ready));
    }
  }

  /** Puts `message` in the pool, unless a partition loses it on the way. */
  private send(message: Message, prefix: string): void {
    if (message.type === "pre-vote") this.preVoteSent = true;
    const lost = this.cut(message.from, message.to);
    if (!lost) this.pool.push(message);
    this.print(`${prefix}${formatMessage(message)}${lost ? " (lost: partition)" : ""}`);
  }

  private apply(id: string, slot: number, value: string): void {
    const first = this.chosenValues.get(slot);
    if (first !== undefined && first !== value) this.print(`SAFETY VIOLATION: slot ${slot} applied as ${first} and as ${value}`, true);
    this.chosenValues.set(slot, first ?? value);
    this.print(`apply ${id} ${slot} ${value}`, true);
  }

  // ------------------------------------------------------------ helpers

  /** Runs one input on `id`, then checks its invariants and prints a role change. */
  private input(id: string, action: () => void): void {
    const node = this.node(id);
    action();
    try {
      node.replica.checkInvariants();
    } catch (error) {
      this.print(`INVARIANT ${id}: ${error instanceof Error ? error.message : String(error)}`, true);
    }
    const s = node.replica.status();
    const role = s.role === "follower" || s.ballot === undefined ? s.role : `${s.role} at ${ballot(s.ballot)}`;
    if (role !== node.lastRole) this.print(`${id} is ${role}`, true);
    node.lastRole = role;
  }

  private cut(from: string, to: string): boolean {
    if (this.groups === undefined || from === to) return false;
    return (this.groups.get(from) ?? `alone:${from}`) !== (this.groups.get(to) ?? `alone:${to}`);
  }

  /** Runs `action` for each of `ids`, or for every replica in id order when none is named. */
  private each(ids: readonly string[], action: (id: string) => void): void {
    for (const id of ids.length > 0 ? ids : [...this.nodes.keys()].sort()) action(id);
  }

  private node(id: string): Node {
    const node = this.nodes.get(id);
    if (node !== undefined) return node;
    throw new Error(`no replica ${JSON.stringify(id)}`);
  }

  /** Prints a line; while `quiet`, only events (role changes, applies, reads, aborts, violations). */
  private print(line: string, event = false): void {
    if (!this.quiet || event) this.out.push(line);
  }
}

/**
 * Runs a scenario file and returns it with every expected output replaced by
 * the actual one: equal to the input when the scenario passes.
 */
export function runScenarioFile(text: string): string {
  const scenario = new Scenario();
  const lines = text.split("\n");
  const result: string[] = [];
  for (let index = 0; index < lines.length; ) {
    const line = lines[index] as string;
    if (line.trim() === "" || line.startsWith("#")) {
      result.push(line);
      index += 1;
      continue;
    }
    const command: string[] = [];
    while (index < lines.length && lines[index] !== "----") command.push(lines[index++] as string);
    if (index === lines.length) throw new Error(`command ${JSON.stringify(command[0])} has no ---- line`);
    index += 1; // "----"
    while (index < lines.length && (lines[index] as string).trim() !== "") index += 1; // old expected output
    try {
      result.push(...command, "----", scenario.run(command.join(" ")));
    } catch (error) {
      result.push(...command, "----", `error: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return result.join("\n");
}
