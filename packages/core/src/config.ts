import type { NodeId } from "./ballot.js";
import { invariant } from "./errors.js";
import { hasQuorum } from "./quorum.js";

/**
 * Who takes part in the log from some slot on. Voters accept and are counted
 * in quorums; learners receive and apply the log but are never counted.
 * `id` is the slot whose entry made the configuration (-1: the bootstrap
 * configuration every replica starts from), so ids rise along the log.
 */
export interface Configuration {
  readonly id: number;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /**
   * Where to reach each member, opaque to core (a transport's address, such
   * as `ws://host:port`), so that every replica learns a new member's
   * address from the log itself.
   */
  readonly endpoints?: Readonly<Record<NodeId, string>>;
}

/**
 * A configuration change, decided like any value (it fills a slot of its
 * own). It takes effect only if the configuration chosen last before it is
 * `expected` (compare-and-set, evaluated in slot order by every replica
 * alike); otherwise the entry is a no-op.
 */
export interface ConfigChange {
  readonly expected: number;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /**
   * Every member's address, as the entry records it: a replica takes them
   * from the entry alone, never from what it knew before, so that all agree
   * (the leader fills in the addresses it knows when it proposes).
   */
  readonly endpoints?: Readonly<Record<NodeId, string>>;
}

/** Why a change is refused before it is proposed. */
export function configChangeProblem(change: ConfigChange): string | undefined {
  if (change.voters.length === 0) return "a configuration needs at least one voter";
  const seen = new Set<NodeId>();
  for (const id of [...change.voters, ...change.learners]) {
    if (seen.has(id)) return `${id} is named twice (a member is either a voter or a learner)`;
    seen.add(id);
  }
  return undefined;
}

/**
 * The configurations a replica knows, by the slot that chose them, and
 * Lamport's α rule: a configuration chosen at slot i governs slots from
 * i + α on. So the configuration of slot s is known once every slot up to
 * s − α is known chosen, and a leader that keeps fewer than α slots in
 * flight always knows the quorums of the slots it proposes in.
 *
 * Entries are taken in slot order (`choose`); the history is pruned to what
 * still governs slots at or after a given one.
 */
export class ConfigLog {
  private history: Configuration[];
  /** Configuration entries at slots up to here are accounted for (taken or refused). */
  private through: number;

  constructor(
    readonly alpha: number,
    history: readonly Configuration[],
    through: number,
  ) {
    invariant(Number.isInteger(alpha) && alpha >= 1, `alpha must be a positive integer, not ${alpha}`);
    invariant(history.length > 0, "a configuration history needs at least one configuration");
    for (let index = 1; index < history.length; index += 1) {
      invariant((history[index - 1] as Configuration).id < (history[index] as Configuration).id, "configuration ids must rise");
    }
    this.history = [...history];
    this.through = Math.max(through, this.latest.id);
  }

  /**
   * The configuration every replica of a cluster starts from. A replica that
   * joins a running cluster starts from none (no voters): it counts no
   * quorum and wins no election until the log or a snapshot tells it who votes.
   */
  static bootstrap(alpha: number, voters: readonly NodeId[], learners: readonly NodeId[] = [], endpoints?: Readonly<Record<NodeId, string>>): ConfigLog {
    const config: Configuration = { id: -1, voters: [...voters], learners: [...learners] };
    return new ConfigLog(alpha, [endpoints === undefined ? config : { ...config, endpoints: { ...endpoints } }], -1);
  }

  /** The configuration chosen last (it may not govern any slot yet). */
  get latest(): Configuration {
    return this.history[this.history.length - 1] as Configuration;
  }

  /** The configuration that governs `slot`: the last chosen at or before `slot − α`. */
  governing(slot: number): Configuration {
    for (let index = this.history.length - 1; index > 0; index -= 1) {
      const config = this.history[index] as Configuration;
      if (config.id + this.alpha <= slot) return config;
    }
    return this.history[0] as Configuration;
  }

  /** The distinct configurations governing the slots in `[from, to]`, oldest first. */
  governingRange(from: number, to: number): Configuration[] {
    const first = this.governing(from);
    const configs = [first];
    for (const config of this.history) {
      if (config.id > first.id && config.id + this.alpha <= to) configs.push(config);
    }
    return configs;
  }

  /** The slot from which `latest` governs. */
  get latestEffectiveSlot(): number {
    return this.history.length === 1 ? -Infinity : this.latest.id + this.alpha;
  }

  /**
   * Takes the configuration entry chosen at `slot` (entries must come in slot
   * order). Returns the new configuration, or undefined when the entry is
   * refused (it expected another configuration) or was already accounted for.
   */
  choose(slot: number, change: ConfigChange): Configuration | undefined {
    if (slot <= this.through) return undefined;
    this.through = slot;
    if (change.expected !== this.latest.id || configChangeProblem(change) !== undefined) return undefined;
    const config: Configuration = { id: slot, voters: [...change.voters], learners: [...change.learners] };
    const endpoints = keptEndpoints(config, change.endpoints ?? {});
    this.history.push(endpoints === undefined ? config : { ...config, endpoints });
    return this.latest;
  }

  /** What a snapshot at `slot` must carry: the configurations that govern slots after it. */
  historyAfter(slot: number): Configuration[] {
    const base = this.governing(slot + 1);
    return this.history.filter((config) => config.id >= base.id && config.id <= slot).map(copyConfig);
  }

  /** Forgets configurations that govern no slot at or after `slot`. */
  prune(slot: number): void {
    const base = this.governing(slot);
    const index = this.history.indexOf(base);
    if (index > 0) this.history = this.history.slice(index);
  }

  /** Every replica named in a configuration that governs a slot at or after `slot`, or in the latest. */
  membersFrom(slot: number): Set<NodeId> {
    const members = new Set<NodeId>();
    const base = this.governing(slot);
    for (const config of this.history) {
      if (config.id < base.id) continue;
      for (const id of config.voters) members.add(id);
      for (const id of config.learners) members.add(id);
    }
    return members;
  }

}

/** True when `granted` holds a majority of the voters of each of `configs`. */
export function quorumOfEach(configs: readonly Configuration[], granted: ReadonlySet<NodeId>): boolean {
  return configs.every((config) => hasQuorum(config.voters, granted));
}

export function copyConfig(config: Configuration): Configuration {
  const copy: Configuration = { id: config.id, voters: [...config.voters], learners: [...config.learners] };
  return config.endpoints === undefined ? copy : { ...copy, endpoints: { ...config.endpoints } };
}

/** The addresses of `config`'s members among `endpoints`, in member order; undefined when none is known. */
export function keptEndpoints(config: Configuration, endpoints: Readonly<Record<NodeId, string>>): Record<NodeId, string> | undefined {
  const kept: Record<NodeId, string> = {};
  let any = false;
  for (const id of [...config.voters, ...config.learners]) {
    const endpoint = endpoints[id];
    if (endpoint === undefined) continue;
    kept[id] = endpoint;
    any = true;
  }
  return any ? kept : undefined;
}

export function isVoter(config: Configuration, id: NodeId): boolean {
  return config.voters.includes(id);
}
