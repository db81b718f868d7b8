import { type Command, type FailurePoint, type Message, type Ready, SeededRandom, type SynodError, persistPoints } from "@synod/core";
import { EventQueue } from "./event-queue.js";
import { type KvOp, mix } from "./kv-machine.js";
import { type SimulationOptions, replayCommand } from "./options.js";
import { Nemesis, type NemesisStream, type NemesisTarget } from "./nemesis.js";
import { randomConfigChange } from "./reconfigure.js";
import { SimNode } from "./sim-node.js";
import { type ClientReply, type ClientRequest, SimClient, type HistoryRecord } from "./sim-client.js";
import { checkHistories, type HistoryVerdict } from "./sim-check.js";

type SimEvent =
  | { readonly kind: "deliver"; readonly message: Message }
  | { readonly kind: "tick"; readonly node: string; readonly incarnation: number }
  | { readonly kind: "persisted"; readonly node: string; readonly incarnation: number }
  | { readonly kind: "request"; readonly node: string; readonly client: number; readonly attempt: number; readonly request: ClientRequest }
  | { readonly kind: "reply"; readonly client: number; readonly attempt: number; readonly reply: ClientReply }
  | { readonly kind: "client-timeout"; readonly client: number; readonly attempt: number }
  | { readonly kind: "client-next"; readonly client: number }
  | { readonly kind: "fault"; readonly stream: NemesisStream }
  | { readonly kind: "fault-end"; readonly stream: NemesisStream }
  | { readonly kind: "restart"; readonly node: string }
  | { readonly kind: "reconfigure" }
  | { readonly kind: "snapshot-fetch"; readonly node: string; readonly incarnation: number }
  | { readonly kind: "liveness" }
  | { readonly kind: "quiesce" };

export interface SimulationStatistics {
  events: number;
  messagesSent: number;
  messagesDropped: number;
  crashes: number;
  partitions: number;
  diskStalls: number;
  pauses: number;
  /** Disks lost (the replica restarts rebuilding), and rebuilds finished (it votes again). */
  wipes: number;
  rebuilds: number;
  chosenSlots: number;
  leaderChanges: number;
  operationsOk: number;
  operationsUnknown: number;
  operationsAfterHeal: number;
  /** Configuration changes proposed by the nemesis, and those that took effect. */
  configChangesProposed: number;
  configChangesChosen: number;
  /** Snapshots installed on replicas too far behind for the log. */
  snapshotsInstalled: number;
  /** Linearizable reads a leader served under its master lease, without a read-index round. */
  leaseReads: number;
  /** Crashes at the named failure point of `crashAt`. */
  failurePointCrashes: number;
  /** Commands in batches of an older epoch, chosen after a newer one's, and refused (counted once per slot). */
  staleEpochCommands: number;
}

export interface SimulationResult {
  readonly seed: number;
  readonly options: SimulationOptions;
  /** The first violation found, or undefined when the run passed. */
  readonly violation: string | undefined;
  /** A hash of every event in order: equal seeds give equal hashes. */
  readonly traceHash: string;
  readonly statistics: SimulationStatistics;
  readonly verdicts: readonly HistoryVerdict[];
  readonly replay: string;
}

class Violation extends Error {}

/**
 * A whole cluster in one process, driven by one seed: replicas, disks,
 * network, clients and faults are all simulated, so any failure replays
 * exactly. The run has a safety phase with faults, then a liveness phase in
 * which every fault is healed and progress is required. Invariants are
 * checked after every event; the clients' histories are checked for
 * linearizability at the end.
 */
export class Simulation {
  private readonly random: SeededRandom;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly nodes = new Map<string, SimNode>();
  private readonly ids: string[];
  private readonly clients: SimClient[] = [];
  private readonly cutLinks = new Set<string>();
  private now = 0;
  private trace = 0x811c9dc5;
  private phase: "safety" | "liveness" | "quiesce" = "safety";
  /** The value chosen at each slot, as first learned by any replica. */
  private readonly chosen = new Map<number, string>();
  /** The state digest after applying each slot, as first computed by any replica. */
  private readonly digests = new Map<number, string>();
  /** The configuration each slot's config entry left, as first applied: every replica must agree. */
  private readonly configsAfter = new Map<number, string>();
  /** The slot at which each command (session/seq) was first applied. */
  private readonly appliedAt = new Map<string, number>();
  /** Waiting client requests per node: command key or read id → client attempt. */
  private readonly commandWaiters = new Map<string, Map<string, { client: number; attempt: number }>>();
  private readonly readWaiters = new Map<string, Map<number, { client: number; attempt: number; key: string }>>();
  private lastLeader: string | undefined;
  private readonly statistics: SimulationStatistics = {
    events: 0,
    messagesSent: 0,
    messagesDropped: 0,
    crashes: 0,
    partitions: 0,
    diskStalls: 0,
    pauses: 0,
    wipes: 0,
    rebuilds: 0,
    chosenSlots: 0,
    leaderChanges: 0,
    operationsOk: 0,
    operationsUnknown: 0,
    operationsAfterHeal: 0,
    configChangesProposed: 0,
    configChangesChosen: 0,
    snapshotsInstalled: 0,
    leaseReads: 0,
    failurePointCrashes: 0,
    staleEpochCommands: 0,
  };
  private livenessStartedAt = 0;
  private readonly nemesis: Nemesis;

  /** `log` receives one line per event and the replicas' states after it (for debugging a seed). */
  constructor(
    readonly options: SimulationOptions,
    private readonly log?: (line: string) => void,
  ) {
    this.random = new SeededRandom(options.seed);
    const pool = options.reconfigure ? Math.min(7, options.replicas + 2) : options.replicas;
    this.ids = Array.from({ length: pool }, (_, index) => `n${index + 1}`);
    const bootstrap = this.ids.slice(0, options.replicas);
    const bugs = new Set(options.bugs);
    for (const id of this.ids) {
      const drift = (this.random.float() * 2 - 1) * options.faults.clockDrift;
      const node = new SimNode(id, bootstrap, this.random.next32(), drift, options.replica, bugs, () => this.now);
      this.nodes.set(id, node);
      this.commandWaiters.set(id, new Map());
      this.readWaiters.set(id, new Map());
    }
    this.nemesis = new Nemesis(options.faults, this.random.fork(), this.nemesisTarget());
    for (let index = 0; index < options.clients; index += 1) {
      this.clients.push(new SimClient(index, this.ids, options.keys, this.random.fork()));
    }
  }

  run(): SimulationResult {
    let violation: string | undefined;
    let verdicts: HistoryVerdict[] = [];
    try {
      this.schedule();
      this.loop(this.options.safetyMs + this.options.livenessMs + 1_000);
      this.checkConvergence();
      const histories = this.clients.flatMap((client) => client.history);
      verdicts = checkHistories(histories, this.options.checkBudgetMs);
      const bad = verdicts.find((verdict) => verdict.verdict !== "linearizable");
      if (bad !== undefined) throw new Violation(`${bad.model} history is ${bad.verdict}: ${bad.detail}`);
    } catch (error) {
      if (!(error instanceof Violation) && !(error instanceof Error)) throw error;
      violation = `${error instanceof Violation ? "" : `${error.name}: `}${error.message} (at ${this.now.toFixed(1)} ms)`;
    }
    return {
      seed: this.options.seed,
      options: this.options,
      violation,
      traceHash: this.trace.toString(16).padStart(8, "0"),
      statistics: this.statistics,
      verdicts,
      replay: replayCommand(this.options),
    };
  }

  // ---------------------------------------------------------------- scheduling

  private schedule(): void {
    for (const node of this.nodes.values()) this.scheduleTick(node);
    for (const client of this.clients) this.queue.push(this.random.integer(20), { kind: "client-next", client: client.index });
    for (const stream of this.nemesis.streams()) this.queue.push(this.nemesis.restMs(), { kind: "fault", stream });
    if (this.options.reconfigure) this.queue.push(100 + this.random.integer(200), { kind: "reconfigure" });
    this.queue.push(this.options.safetyMs, { kind: "liveness" });
    this.queue.push(this.options.safetyMs + this.options.livenessMs, { kind: "quiesce" });
  }

  private loop(untilMs: number): void {
    for (;;) {
      const next = this.queue.pop();
      if (next === undefined || next.time > untilMs) return;
      this.now = next.time;
      this.statistics.events += 1;
      this.handle(next.item);
      if (this.log !== undefined) this.logEvent(next.item);
      this.checkInvariants();
    }
  }

  private handle(event: SimEvent): void {
    const target = eventNode(event);
    if (target !== undefined) {
      const node = this.nodes.get(target) as SimNode;
      if (node.pausedUntil > this.now) {
        // A paused process handles nothing until it resumes, then everything at once, in order.
        this.queue.push(node.pausedUntil, event);
        return;
      }
    }
    this.traceEvent(event);
    switch (event.kind) {
      case "deliver":
        return this.deliver(event.message);
      case "tick": {
        const node = this.nodes.get(event.node) as SimNode;
        if (!node.up || node.incarnation !== event.incarnation) return;
        node.replica.tick();
        this.scheduleTick(node);
        return this.process(node);
      }
      case "persisted": {
        const node = this.nodes.get(event.node) as SimNode;
        if (!node.up || node.incarnation !== event.incarnation) return;
        const ready = node.sync();
        if (ready?.persist.rebuilt === true) this.statistics.rebuilds += 1;
        if (ready !== undefined) {
          for (const point of persistPoints(ready.persist).after) if (this.failurePoint(node, point)) return;
          this.complete(node, ready);
        }
        return this.process(node);
      }
      case "request":
        return this.onRequest(event.node, event.client, event.attempt, event.request);
      case "reply":
        return this.clientAct(event.client, (client) => client.onReply(event.attempt, event.reply, this.now));
      case "client-timeout":
        return this.clientAct(event.client, (client) => client.onTimeout(event.attempt, this.now));
      case "client-next":
        return this.clientAct(event.client, (client) => client.next(this.now, this.phase !== "quiesce"));
      case "fault":
        if (this.phase !== "safety") return;
        this.queue.push(this.now + this.nemesis.start(event.stream, this.now), { kind: "fault-end", stream: event.stream });
        return;
      case "fault-end":
        if (this.phase !== "safety") return;
        this.nemesis.end(event.stream);
        this.queue.push(this.now + this.nemesis.restMs(), { kind: "fault", stream: event.stream });
        return;
      case "restart":
        return this.restart(event.node);
      case "snapshot-fetch":
        return this.fetchSnapshot(event.node, event.incarnation);
      case "reconfigure":
        if (this.phase !== "safety") return;
        this.reconfigure();
        this.queue.push(this.now + 80 + this.random.integer(300), { kind: "reconfigure" });
        return;
      case "liveness":
        return this.startLiveness();
      case "quiesce":
        this.phase = "quiesce";
        return;
    }
  }

  private logEvent(event: SimEvent): void {
    const log = this.log as (line: string) => void;
    let text = `${this.now.toFixed(2)} ${event.kind}`;
    if (event.kind === "deliver") text += ` ${JSON.stringify(event.message).slice(0, 300)}`;
    else if (event.kind === "request") text += ` ${event.node} c${event.client}#${event.attempt} ${JSON.stringify(event.request).slice(0, 160)}`;
    else if (event.kind === "reply") text += ` c${event.client}#${event.attempt} ${JSON.stringify(event.reply).slice(0, 160)}`;
    else if ("node" in event) text += ` ${event.node}`;
    else if ("client" in event) text += ` c${event.client}`;
    log(text);
    log(`    ${[...this.nodes.values()].map((node) => (node.up ? node.replica.describe() : `${node.id} down`)).join(" | ")} cut=${[...this.cutLinks].join(",")}`);
  }

  private traceEvent(event: SimEvent): void {
    let text = `${this.now}|${event.kind}`;
    if (event.kind === "deliver") text += `|${event.message.from}>${event.message.to}|${event.message.type}`;
    else if ("node" in event) text += `|${event.node}`;
    else if ("client" in event) text += `|c${event.client}`;
    this.trace = mix(this.trace, text);
  }

  private scheduleTick(node: SimNode): void {
    const interval = this.options.tickMs / (1 + node.drift);
    this.queue.push(this.now + interval, { kind: "tick", node: node.id, incarnation: node.incarnation });
  }

  // ---------------------------------------------------------------- replicas

  /**
   * Processes every Ready the node has, the way the driver does: one at a
   * time; messages, then the persist, applying what was chosen while it is
   * in flight; replies and `advance` once it is durable.
   */
  private process(node: SimNode): void {
    if (node.up && !node.fetching && node.replica.wantsSnapshot !== undefined) {
      node.fetching = true;
      this.queue.push(this.now + 5 + this.random.integer(20), { kind: "snapshot-fetch", node: node.id, incarnation: node.incarnation });
    }
    while (node.up && !node.hasPersistInFlight() && node.replica.hasReady()) {
      const ready = node.replica.ready();
      for (const record of ready.persist.records) if (record.chosen) this.noteChosen(node, record.slot, record.value);
      for (const message of ready.messages) this.send(node, message);
      for (const point of persistPoints(ready.persist).before) if (this.failurePoint(node, point)) return;
      this.applyReady(node, ready);
      if (node.startPersist(ready)) {
        const stalled = node.diskStallUntil > this.now;
        const latency = stalled ? 50 + this.random.integer(300) : 0.05 + this.random.float() * 1.5;
        this.queue.push(this.now + latency, { kind: "persisted", node: node.id, incarnation: node.incarnation });
        return;
      }
      this.complete(node, ready);
    }
  }

  /** The rest of a Ready once its persist is durable: replies that vouch for it, then `advance`. */
  private complete(node: SimNode, ready: Ready): void {
    for (const message of ready.messagesAfterPersist) this.send(node, message);
    node.replica.advance(ready);
    this.maybeSnapshot(node);
  }

  /**
   * Applies what a Ready chose, serves its reads and fails its aborted
   * commands. None of it depends on the Ready's own persist (a value is
   * chosen only once a quorum holds it durably), so it runs while that
   * persist is in flight.
   */
  private applyReady(node: SimNode, ready: Ready): void {
    for (const entry of ready.chosen) {
      this.noteChosen(node, entry.slot, entry.value);
      for (const applied of node.apply(entry)) {
        const key = `${applied.command.session}/${applied.command.seq}`;
        if (!applied.outcome.ok && applied.outcome.error.code === "EPOCH_CHANGED" && !this.digests.has(entry.slot)) this.statistics.staleEpochCommands += 1;
        if (!applied.duplicate && applied.outcome.ok) {
          const first = this.appliedAt.get(key);
          if (first === undefined) this.appliedAt.set(key, entry.slot);
          else if (first !== entry.slot) throw new Violation(`command ${key} applied twice: at slots ${first} and ${entry.slot} (on ${node.id})`);
        }
        const waiter = this.commandWaiters.get(node.id)?.get(key);
        if (waiter !== undefined) {
          this.commandWaiters.get(node.id)?.delete(key);
          this.replyTo(node.id, waiter.client, waiter.attempt, { type: "outcome", outcome: applied.outcome, slot: entry.slot });
        }
      }
      if (entry.value.type === "config") this.noteConfigApplied(node, entry.slot);
      const digest = node.host.digest();
      const known = this.digests.get(entry.slot);
      if (known === undefined) this.digests.set(entry.slot, digest);
      else if (known !== digest) throw new Violation(`replicas diverged after slot ${entry.slot}: ${node.id} has ${digest}, another had ${known}`);
    }
    const reads = this.readWaiters.get(node.id) as Map<number, { client: number; attempt: number; key: string }>;
    for (const read of ready.reads) {
      const waiter = reads.get(read.id);
      if (waiter === undefined) continue;
      reads.delete(read.id);
      this.replyTo(node.id, waiter.client, waiter.attempt, { type: "read", value: node.host.query({ key: waiter.key }) });
    }
    for (const failed of ready.failedReads) {
      const waiter = reads.get(failed.id);
      if (waiter === undefined) continue;
      reads.delete(failed.id);
      this.replyTo(node.id, waiter.client, waiter.attempt, errorReply(failed.error));
    }
    const commands = this.commandWaiters.get(node.id) as Map<string, { client: number; attempt: number }>;
    for (const aborted of ready.aborted) {
      const key = `${aborted.command.session}/${aborted.command.seq}`;
      const waiter = commands.get(key);
      if (waiter === undefined) continue;
      commands.delete(key);
      this.replyTo(node.id, waiter.client, waiter.attempt, errorReply(aborted.error));
    }
  }

  private maybeSnapshot(node: SimNode): void {
    const every = this.options.snapshotEverySlots;
    if (every <= 0 || node.appliedSinceSnapshot < every) return;
    node.appliedSinceSnapshot = 0;
    const { handle } = node.host.beginSnapshot();
    const serialize = node.host.machine.snapshot();
    if (this.failurePoint(node, "before-snapshot")) return;
    node.durable.installSnapshot({ handle, data: serialize() as Uint8Array });
    if (this.failurePoint(node, "after-snapshot")) return;
    node.replica.compact(Math.max(0, handle.slot + 1 - this.options.snapshotTailSlots));
  }

  /**
   * With `crashAt` set, crashes the node a fifth of the times it passes that
   * point in the safety phase, and restarts it a little later. Draws nothing
   * otherwise, so runs without it replay as before.
   */
  private failurePoint(node: SimNode, point: FailurePoint): boolean {
    if (this.options.crashAt !== point || this.phase !== "safety" || !this.random.chance(0.2)) return false;
    this.crash(node);
    this.statistics.failurePointCrashes += 1;
    this.queue.push(this.now + 20 + this.random.integer(200), { kind: "restart", node: node.id });
    return true;
  }

  private noteConfigApplied(node: SimNode, slot: number): void {
    const config = JSON.stringify(node.host.config);
    const known = this.configsAfter.get(slot);
    if (known === undefined) {
      this.configsAfter.set(slot, config);
      if (node.host.config.id === slot) this.statistics.configChangesChosen += 1;
    } else if (known !== config) {
      throw new Violation(`replicas disagree on the configuration after slot ${slot}: ${node.id} has ${config}, another had ${known}`);
    }
  }

  /** Proposes a random configuration change at the leader: the nemesis of membership. */
  private reconfigure(): void {
    const leaderId = this.currentLeader();
    if (leaderId === undefined) return;
    const leader = this.nodes.get(leaderId) as SimNode;
    const change = randomConfigChange(leader.replica.status().config, this.ids, this.random);
    if (change === undefined) return;
    try {
      leader.replica.proposeConfig(change, `r${this.statistics.configChangesProposed}`);
      this.statistics.configChangesProposed += 1;
    } catch {
      // Another change is being decided: fine, the nemesis tries again later.
    }
    this.process(leader);
  }

  /**
   * A replica too far behind for the leader's log fetches a snapshot: from
   * a random live replica whose saved snapshot is recent enough, after a
   * transfer delay (during which anything may happen to either). Installed
   * the way the driver does it: durable, then the state machine, then the replica.
   */
  private fetchSnapshot(id: string, incarnation: number): void {
    const node = this.nodes.get(id) as SimNode;
    if (!node.up || node.incarnation !== incarnation) return;
    if (node.hasPersistInFlight()) {
      // The driver installs between Readies: wait for this one's write.
      this.queue.push(this.now + 1, { kind: "snapshot-fetch", node: id, incarnation });
      return;
    }
    node.fetching = false;
    const wanted = node.replica.wantsSnapshot;
    if (wanted === undefined) return;
    const sources = [...this.nodes.values()].filter((other) => other !== node && other.up && (other.durable.snapshot?.handle.slot ?? -1) >= wanted.minSlot);
    const source = sources[this.random.integer(Math.max(1, sources.length))];
    const snapshot = source?.durable.snapshot;
    if (snapshot !== undefined && snapshot.handle.slot >= node.replica.status().firstUnchosen) {
      node.durable.installSnapshot(snapshot);
      node.host.restore(snapshot);
      node.replica.installSnapshot(snapshot.handle);
      node.appliedSinceSnapshot = 0;
      this.statistics.snapshotsInstalled += 1;
    }
    this.process(node);
  }

  private noteChosen(node: SimNode, slot: number, value: unknown): void {
    const encoded = JSON.stringify(value);
    const known = this.chosen.get(slot);
    if (known === undefined) {
      this.chosen.set(slot, encoded);
      this.statistics.chosenSlots += 1;
    } else if (known !== encoded) {
      throw new Violation(`two values chosen at slot ${slot}: ${node.id} learned ${encoded}, another learned ${known}`);
    }
  }

  private checkInvariants(): void {
    let leader: string | undefined;
    for (const node of this.nodes.values()) {
      if (!node.up) continue;
      node.replica.checkInvariants();
      if (node.replica.status().role === "leader") leader = node.id;
    }
    if (leader !== undefined && leader !== this.lastLeader) {
      this.lastLeader = leader;
      this.statistics.leaderChanges += 1;
    }
  }

  // ---------------------------------------------------------------- network

  private send(from: SimNode, message: Message): void {
    from.noteSent(message);
    this.statistics.messagesSent += 1;
    const faults = this.options.faults;
    const lossy = this.phase === "safety";
    if (this.cutLinks.has(`${message.from}>${message.to}`) || (lossy && this.random.chance(faults.loss))) {
      this.statistics.messagesDropped += 1;
      return;
    }
    const copies = lossy && this.random.chance(faults.duplicate) ? 2 : 1;
    for (let copy = 0; copy < copies; copy += 1) {
      const delay =
        lossy && this.random.chance(faults.longDelay)
          ? faults.maxDelayMs + this.random.float() * faults.longDelayMaxMs
          : faults.minDelayMs + this.random.float() * (faults.maxDelayMs - faults.minDelayMs);
      this.queue.push(this.now + delay, { kind: "deliver", message });
    }
  }

  private deliver(message: Message): void {
    const node = this.nodes.get(message.to);
    if (node === undefined || !node.up || this.cutLinks.has(`${message.from}>${message.to}`)) return;
    node.replica.step(message);
    this.process(node);
  }

  // ---------------------------------------------------------------- faults

  /** The nemesis's handle on the cluster. */
  private nemesisTarget(): NemesisTarget {
    return {
      ids: this.ids,
      clients: this.clients.map((client) => `c${client.index}`),
      cutLinks: this.cutLinks,
      currentLeader: () => this.currentLeader(),
      crash: (id) => {
        const node = this.nodes.get(id) as SimNode;
        if (node.up) this.crash(node);
      },
      wipe: (id) => {
        const node = this.nodes.get(id) as SimNode;
        // One lost disk at a time: a quorum of the others must vouch for what it lost.
        const others = [...this.nodes.values()].filter((other) => other !== node);
        if (this.options.reconfigure || this.ids.length < 3 || others.some((other) => other.durable.rebuilding)) return false;
        if (node.up) this.crash(node);
        node.wipe();
        return true;
      },
      restart: (id) => this.restart(id),
      pause: (id, untilMs) => {
        const node = this.nodes.get(id) as SimNode;
        node.pausedUntil = Math.max(node.pausedUntil, untilMs);
      },
      stallDisk: (id, untilMs) => {
        const node = this.nodes.get(id) as SimNode;
        node.diskStallUntil = Math.max(node.diskStallUntil, untilMs);
      },
      count: (fault) => {
        this.statistics[fault] += 1;
      },
    };
  }

  private crash(node: SimNode): void {
    const torn = this.options.faults.tornWrites && this.random.chance(0.5) ? this.random.float() : undefined;
    node.crash(torn);
    this.commandWaiters.get(node.id)?.clear();
    this.readWaiters.get(node.id)?.clear();
    this.statistics.crashes += 1;
  }

  private restart(id: string): void {
    const node = this.nodes.get(id) as SimNode;
    if (node.up) return;
    node.restart();
    const problem = node.checkVouchedSurvived();
    if (problem !== undefined) throw new Violation(problem);
    this.scheduleTick(node);
    this.process(node);
  }

  private startLiveness(): void {
    this.phase = "liveness";
    this.livenessStartedAt = this.now;
    this.nemesis.endAll();
    this.cutLinks.clear();
    for (const node of this.nodes.values()) {
      node.diskStallUntil = 0;
      node.pausedUntil = Math.min(node.pausedUntil, this.now);
      if (!node.up) this.restart(node.id);
    }
    for (const client of this.clients) client.markHeal(this.now);
  }

  /** After the quiet period every replica must have applied the same slots and reached the same state. */
  private checkConvergence(): void {
    const okAfterHeal = this.clients.reduce((sum, client) => sum + client.completedSince(this.livenessStartedAt), 0);
    this.statistics.operationsAfterHeal = okAfterHeal;
    for (const client of this.clients) {
      this.statistics.operationsOk += client.history.filter((record) => record.output !== undefined).length;
      this.statistics.operationsUnknown += client.history.filter((record) => record.output === undefined).length;
    }
    if (this.options.livenessMs > 0 && this.options.clients > 0) {
      for (const client of this.clients) {
        if (client.completedSince(this.livenessStartedAt) === 0) {
          throw new Violation(`no progress: client ${client.index} completed nothing in the ${this.options.livenessMs} ms liveness phase`);
        }
      }
    }
    const applied = [...this.nodes.values()].map((node) => node.host.appliedThrough);
    const highest = Math.max(...applied);
    // Replicas removed from the cluster (or never added) need not keep up; every member must.
    const ahead = [...this.nodes.values()].find((node) => node.host.appliedThrough === highest) as SimNode;
    const members = new Set([...ahead.host.config.voters, ...ahead.host.config.learners]);
    for (const node of this.nodes.values()) {
      if (!members.has(node.id)) continue;
      if (node.host.appliedThrough !== highest) {
        throw new Violation(`${node.id} applied through ${node.host.appliedThrough} but others reached ${highest} after the quiet period`);
      }
    }
    for (const client of this.clients) {
      for (const key of client.acknowledgedCommands()) {
        const slot = this.appliedAt.get(key);
        if (slot === undefined || slot > highest) throw new Violation(`acknowledged command ${key} is not in the applied log`);
      }
    }
  }

  // ---------------------------------------------------------------- clients

  private clientAct(index: number, action: (client: SimClient) => void): void {
    const client = this.clients[index] as SimClient;
    action(client);
    for (const output of client.drain()) {
      switch (output.kind) {
        case "send": {
          const latency = 0.5 + this.random.float() * 3;
          const sentAt = this.now + output.delayMs;
          if (!this.cutLinks.has(`c${index}>${output.node}`)) {
            this.queue.push(sentAt + latency, { kind: "request", node: output.node, client: index, attempt: output.attempt, request: output.request });
          }
          this.queue.push(sentAt + output.timeoutMs, { kind: "client-timeout", client: index, attempt: output.attempt });
          break;
        }
        case "wait":
          this.queue.push(this.now + output.delayMs, { kind: "client-next", client: index });
          break;
      }
    }
  }

  private onRequest(nodeId: string, client: number, attempt: number, request: ClientRequest): void {
    const node = this.nodes.get(nodeId) as SimNode;
    if (!node.up) return;
    if (request.type === "read") {
      try {
        const leasedBefore = node.replica.status().leaseReads;
        const id = node.replica.read();
        this.statistics.leaseReads += node.replica.status().leaseReads - leasedBefore;
        this.readWaiters.get(nodeId)?.set(id, { client, attempt, key: request.key });
      } catch (error) {
        this.replyTo(nodeId, client, attempt, errorReply(error as SynodError));
      }
    } else {
      const command: Command = request.command;
      const cached = node.host.cachedOutcome(command.session, command.seq);
      if (cached !== undefined) {
        this.replyTo(nodeId, client, attempt, { type: "outcome", outcome: cached, slot: -1 });
        return;
      }
      try {
        node.replica.propose(command);
        this.commandWaiters.get(nodeId)?.set(`${command.session}/${command.seq}`, { client, attempt });
      } catch (error) {
        this.replyTo(nodeId, client, attempt, errorReply(error as SynodError));
      }
    }
    this.process(node);
  }

  private replyTo(node: string, client: number, attempt: number, reply: ClientReply): void {
    if (this.cutLinks.has(`${node}>c${client}`)) return;
    const latency = 0.5 + this.random.float() * 3;
    this.queue.push(this.now + latency, { kind: "reply", client, attempt, reply });
  }

  private currentLeader(): string | undefined {
    for (const node of this.nodes.values()) if (node.up && node.replica.status().role === "leader") return node.id;
    return undefined;
  }

}

/** The replica an event happens on, if any (client-side events have none). */
function eventNode(event: SimEvent): string | undefined {
  switch (event.kind) {
    case "deliver":
      return event.message.to;
    case "tick":
    case "persisted":
    case "request":
    case "snapshot-fetch":
      return event.node;
    default:
      return undefined;
  }
}

function errorReply(error: SynodError | Error): ClientReply {
  const code = "code" in error && typeof error.code === "string" ? error.code : "INTERNAL";
  const hint = "leaderHint" in error && typeof error.leaderHint === "string" ? error.leaderHint : undefined;
  return { type: "error", code, leaderHint: hint };
}

export type { HistoryRecord, KvOp };
