import { ConfigChangeError, type Configuration, NotLeaderError, type NodeId, type ReplicaStatus, SynodError } from "@synod/core";

/** The part of a `SynodNode` membership changes need: any application's node will do. */
export interface ReconfigurableNode {
  readonly id: NodeId;
  status(): ReplicaStatus;
  proposeConfig(change: {
    readonly expected: number;
    readonly voters: readonly NodeId[];
    readonly learners: readonly NodeId[];
    readonly endpoints?: Readonly<Record<NodeId, string>>;
  }): Promise<Configuration>;
}

/** The configuration a cluster should end up with. */
export interface MembershipTarget {
  readonly voters: readonly NodeId[];
  /** Default: the current learners, less those that become voters. */
  readonly learners?: readonly NodeId[];
  /** Addresses of new (or moved) members; the others keep theirs. */
  readonly endpoints?: Readonly<Record<NodeId, string>>;
}

export interface ChangeOptions {
  /** The id of the configuration this change was decided against (compare-and-set): see `MembershipView.config.id`. */
  readonly expectedConfigId: number;
  /** A learner is promoted once it is within this many slots of the leader (default 64)... */
  readonly catchUpSlots?: number;
  /**
   * ...or within the slots the leader chose in the last this many
   * milliseconds (default 500), whichever is more: under a heavy write load
   * a learner that keeps pace a fraction of a second behind is as current as
   * a voter, and would otherwise never come within a fixed count (etcd asks
   * 90 % of the leader's index for the same reason). 0: the count alone.
   */
  readonly catchUpWithinMs?: number;
  /** How long new members may take to catch up (default 60 s). */
  readonly catchUpTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** Options of the one-member shorthands: `endpoint` is where the member is reached (needed for a new one). */
export type MemberOptions = ChangeOptions & { readonly endpoint?: string };

/** One member as the leader sees it. */
export interface MemberView {
  readonly id: NodeId;
  readonly role: "voter" | "learner";
  /** How many slots the member is behind the leader (0 for the leader itself; undefined when the leader has not heard from it). */
  readonly lagSlots: number | undefined;
  /** Ticks since the member last answered the leader (0 for the leader itself). */
  readonly silentTicks: number | undefined;
  readonly leader: boolean;
}

export interface MembershipView {
  readonly config: Configuration;
  /** The slot from which `config` governs; before it the previous configuration still decides. */
  readonly effectiveFrom: number;
  readonly members: readonly MemberView[];
}

/**
 * A membership change that could not be completed. `CATCH_UP_TIMEOUT`: a new
 * member did not come within `catchUpSlots` of the leader in time (it stays
 * a learner; `details.learners` says which ones lag); `ABORTED`: the caller's
 * signal fired (the same).
 */
export class MembershipError extends SynodError {
  readonly retryable = false;
  constructor(
    readonly code: "CATCH_UP_TIMEOUT" | "ABORTED",
    message: string,
    readonly details: { readonly config: Configuration; readonly lagging?: readonly NodeId[] },
  ) {
    super(message);
  }
}

/** Nodes with a change under way in this process: one change at a time. */
const changing = new WeakSet<ReconfigurableNode>();

/**
 * Declarative membership changes on the leader's `SynodNode`. `change`
 * takes the cluster from its configuration to `target`: members new to
 * voting join as learners first (they receive and apply the log, and count
 * in no quorum), are promoted once they are within `catchUpSlots` of the
 * leader, and in the same entry removed members stop voting. Any change is
 * safe in one step (a configuration chosen at slot i governs from i + α);
 * the learner stage is for liveness, so that new voters can answer at once.
 * A leader removed by the change hands over to a caught-up voter by itself.
 */
export class Membership {
  constructor(
    private readonly node: ReconfigurableNode,
    private readonly pollMs = 20,
  ) {}

  /** The configuration, the slot it governs from, and each member's role, lag and health (the leader's view). */
  view(): MembershipView {
    const status = this.node.status();
    const peers = new Map(status.peers.map((peer) => [peer.id, peer]));
    const member = (id: NodeId, role: MemberView["role"]): MemberView => {
      if (id === status.id && status.role === "leader") return { id, role, lagSlots: 0, silentTicks: 0, leader: true };
      const peer = peers.get(id);
      return {
        id,
        role,
        lagSlots: peer?.firstUnchosen === undefined ? undefined : Math.max(0, status.firstUnchosen - peer.firstUnchosen),
        silentTicks: peer?.firstUnchosen === undefined ? undefined : peer.silentTicks,
        leader: id === status.leader,
      };
    };
    return {
      config: status.config,
      effectiveFrom: Math.max(0, status.configEffectiveSlot),
      members: [...status.config.voters.map((id) => member(id, "voter")), ...status.config.learners.map((id) => member(id, "learner"))],
    };
  }

  /**
   * Takes the cluster to `target` (see the class). Resolves with the final
   * configuration once chosen. Rejects with `NotLeaderError` off the leader,
   * `ConfigChangeError` (`CONFIG_CHANGED` when `expectedConfigId` is stale,
   * `CHANGE_IN_PROGRESS` when another change is under way,
   * `INVALID_CONFIG`), or `MembershipError`.
   */
  async change(target: MembershipTarget, options: ChangeOptions): Promise<Configuration> {
    if (changing.has(this.node)) throw new ConfigChangeError("CHANGE_IN_PROGRESS", "another membership change is under way on this node");
    changing.add(this.node);
    try {
      return await this.changeNow(target, options);
    } finally {
      changing.delete(this.node);
    }
  }

  /** Adds `id` as a learner: a read replica that receives and applies the log. */
  addLearner(id: NodeId, options: MemberOptions): Promise<Configuration> {
    const config = this.current(options);
    return this.change({ voters: config.voters, learners: unique([...config.learners, id]), ...endpointOf(id, options) }, options);
  }

  /** Makes `id` a voter (joining as a learner first if it is not one). */
  promote(id: NodeId, options: MemberOptions): Promise<Configuration> {
    const config = this.current(options);
    return this.change({ voters: unique([...config.voters, id]), ...endpointOf(id, options) }, options);
  }

  /** Removes `id`, voter or learner (the leader too: it hands over first). */
  remove(id: NodeId, options: ChangeOptions): Promise<Configuration> {
    const config = this.current(options);
    return this.change({ voters: config.voters.filter((voter) => voter !== id), learners: config.learners.filter((learner) => learner !== id) }, options);
  }

  /** Replaces voter `oldId` with `newId`: the new one joins and catches up, then one entry swaps them. */
  replace(oldId: NodeId, newId: NodeId, options: MemberOptions): Promise<Configuration> {
    const config = this.current(options);
    if (!config.voters.includes(oldId)) throw new ConfigChangeError("INVALID_CONFIG", `${oldId} is not a voter of configuration ${config.id}`);
    return this.change({ voters: unique([...config.voters.filter((voter) => voter !== oldId), newId]), ...endpointOf(newId, options) }, options);
  }

  private async changeNow(target: MembershipTarget, options: ChangeOptions): Promise<Configuration> {
    let config = this.current(options);
    const learners = target.learners ?? config.learners.filter((id) => !target.voters.includes(id));
    const endpoints = target.endpoints === undefined ? {} : { endpoints: target.endpoints };
    const moved = Object.entries(target.endpoints ?? {}).some(([id, endpoint]) => config.endpoints?.[id] !== endpoint);
    if (sameMembers(config.voters, target.voters) && sameMembers(config.learners, learners) && !moved) return config;
    const newcomers = target.voters.filter((id) => !config.voters.includes(id));
    const joining = newcomers.filter((id) => !config.learners.includes(id));
    if (joining.length > 0) {
      config = await this.node.proposeConfig({ expected: config.id, voters: config.voters, learners: unique([...config.learners, ...joining]), ...endpoints });
    }
    if (newcomers.length > 0) await this.awaitCatchUp(newcomers, config, options);
    return this.node.proposeConfig({ expected: config.id, voters: target.voters, learners, ...endpoints });
  }

  /** The configuration as the leader knows it, checked against the caller's expectation. */
  private current(options: ChangeOptions): Configuration {
    const status = this.node.status();
    if (status.role !== "leader") throw new NotLeaderError(status.leader);
    if (status.config.id !== options.expectedConfigId) {
      throw new ConfigChangeError("CONFIG_CHANGED", `the change expects configuration ${options.expectedConfigId}, but ${status.config.id} is current`, status.config.id);
    }
    return status.config;
  }

  private async awaitCatchUp(ids: readonly NodeId[], config: Configuration, options: ChangeOptions): Promise<void> {
    const pace = new CatchUpPace(options.catchUpSlots ?? 64, options.catchUpWithinMs ?? 500);
    const deadline = Date.now() + (options.catchUpTimeoutMs ?? 60_000);
    for (;;) {
      const status = this.node.status();
      if (status.role !== "leader") throw new NotLeaderError(status.leader);
      const within = pace.allowance(Date.now(), status.firstUnchosen);
      const peers = new Map(status.peers.map((peer) => [peer.id, peer]));
      const lagging = ids.filter((id) => {
        const peer = peers.get(id);
        return peer?.firstUnchosen === undefined || status.firstUnchosen - peer.firstUnchosen > within;
      });
      if (lagging.length === 0) return;
      if (options.signal?.aborted === true) throw new MembershipError("ABORTED", `the change was aborted while ${lagging.join(", ")} caught up; they stay learners`, { config, lagging });
      if (Date.now() > deadline) {
        throw new MembershipError("CATCH_UP_TIMEOUT", `${lagging.join(", ")} did not come within ${within} slots of the leader in time; they stay learners`, { config, lagging });
      }
      await new Promise<void>((resolve) => setTimeout(resolve, this.pollMs));
    }
  }
}

function endpointOf(id: NodeId, options: MemberOptions): { endpoints?: Record<NodeId, string> } {
  return options.endpoint === undefined ? {} : { endpoints: { [id]: options.endpoint } };
}

function sameMembers(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}

function unique(ids: readonly NodeId[]): NodeId[] {
  return [...new Set(ids)];
}

/**
 * How far behind the leader a learner may be and count as caught up: a
 * fixed number of slots, or the slots the leader chose in the last
 * `withinMs`, whichever is more (see `ChangeOptions.catchUpWithinMs`).
 */
export class CatchUpPace {
  private readonly samples: { readonly time: number; readonly firstUnchosen: number }[] = [];

  constructor(
    private readonly slots: number,
    private readonly withinMs: number,
  ) {}

  /** Notes the leader's `firstUnchosen` at `time` (ms) and returns the allowance then. */
  allowance(time: number, firstUnchosen: number): number {
    this.samples.push({ time, firstUnchosen });
    if (this.withinMs <= 0) return this.slots;
    // Keep one sample at least `withinMs` old: the pace is measured over a whole window or not at all.
    while (this.samples.length > 2 && (this.samples[1] as { time: number }).time <= time - this.withinMs) this.samples.shift();
    const oldest = this.samples[0] as { time: number; firstUnchosen: number };
    if (time - oldest.time < this.withinMs) return this.slots;
    const recent = ((firstUnchosen - oldest.firstUnchosen) * this.withinMs) / (time - oldest.time);
    return Math.max(this.slots, Math.floor(recent));
  }
}
