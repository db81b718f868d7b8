/**
 * The in-process clusters the driver tests run: SynodNodes over the
 * in-memory network and storage, stopped after each test.
 */
import { expect } from "vitest";
import { MemoryNetwork, MemoryStorage, type NodeConfig, SeededRandom, SynodNode } from "../src/index.js";
import { ListMachine } from "../src/testing/index.js";
import { waitFor } from "./wait.js";

export type Node = SynodNode<number, number, number, "all", number[]>;
export type Config = NodeConfig<number, number, number, "all", number[]>;

export const TICK_MS = 5;


export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Every node any test started: `stopStarted` (after each test) stops them, whatever happened. */
export const started: Node[] = [];

export async function stopStarted(): Promise<void> {
  await Promise.all(started.splice(0).map((node) => node.stop()));
}

export interface Cluster {
  readonly network: MemoryNetwork;
  readonly voters: readonly string[];
  readonly nodes: Node[];
  readonly machines: ListMachine[];
  readonly storages: MemoryStorage[];
  /** Leader events each node emitted, in order. */
  readonly leaderEvents: (string | undefined)[][];
  node(id: string): Node;
  machine(id: string): ListMachine;
  /** Starts a (new) node for `id` on `id`'s storage and network link. */
  startNode(id: string, extra?: Partial<Config>): Promise<Node>;
}

export async function startCluster(extra: Partial<Config> = {}, voters: readonly string[] = ["a", "b", "c"]): Promise<Cluster> {
  const network = new MemoryNetwork();
  const nodes: Node[] = [];
  const machines: ListMachine[] = [];
  const storages = voters.map(() => new MemoryStorage());
  const leaderEvents: (string | undefined)[][] = voters.map(() => []);
  const index = (id: string): number => {
    const at = voters.indexOf(id);
    if (at < 0) throw new Error(`unknown node ${id}`);
    return at;
  };
  const cluster: Cluster = {
    network,
    voters,
    nodes,
    machines,
    storages,
    leaderEvents,
    node: (id) => nodes[index(id)] as Node,
    machine: (id) => machines[index(id)] as ListMachine,
    startNode: async (id, more = {}) => {
      const at = index(id);
      const machine = new ListMachine();
      const node: Node = new SynodNode({
        id,
        voters,
        storage: storages[at] as MemoryStorage,
        transport: network.transport(id),
        stateMachine: machine,
        tickMs: TICK_MS,
        random: new SeededRandom(1000 + at * 17 + started.length),
        ...extra,
        ...more,
      });
      node.on("leader", (leader) => leaderEvents[at]?.push(leader));
      nodes[at] = node;
      machines[at] = machine;
      started.push(node);
      await node.start();
      return node;
    },
  };
  for (const id of voters) await cluster.startNode(id);
  return cluster;
}

/** The one leader every other node follows. */
export async function stableLeader(cluster: Cluster, among: readonly Node[] = cluster.nodes): Promise<Node> {
  return waitFor(() => {
    const leaders = among.filter((node) => node.status().role === "leader");
    const leader = leaders[0];
    if (leaders.length !== 1 || leader === undefined) return undefined;
    return among.every((node) => node.status().leader === leader.id) ? leader : undefined;
  }, "a stable leader");
}

export async function converged(cluster: Cluster, ids: readonly string[], expected: readonly number[]): Promise<void> {
  await waitFor(() => ids.every((id) => cluster.machine(id).items.length >= expected.length), `${ids.join(",")} to apply ${expected.length} ops`);
  for (const id of ids) expect(cluster.machine(id).items, `state of ${id}`).toEqual(expected);
}
