/**
 * A 3-replica Synod cluster in one process, over the in-memory network:
 * elects a leader, chooses commands (one by one, batched, and a MultiOp),
 * reads linearizably, survives the loss of its leader, and shows that every
 * replica applied the same log. Run: `pnpm demo`.
 */
import { type ApplyContext, MemoryNetwork, MemoryStorage, NotLeaderError, type StateMachine, SynodNode } from "../src/index.js";

type Op = { type: "set"; key: string; value: string } | { type: "incr"; key: string };
type Test = { type: "equals"; key: string; value: string };

/** A tiny KV store: the application the replicated log runs. */
class Store implements StateMachine<Op, Test, string, string, string | undefined> {
  readonly data = new Map<string, string>();
  readonly applied: string[] = [];
  apply(op: Op, context: ApplyContext): string {
    const value = op.type === "set" ? op.value : String(Number(this.data.get(op.key) ?? "0") + 1);
    this.data.set(op.key, value);
    this.applied.push(`${context.slot}:${op.type} ${op.key}=${value}`);
    return value;
  }
  test(test: Test): boolean {
    return this.data.get(test.key) === test.value;
  }
  query(key: string): string | undefined {
    return this.data.get(key);
  }
  snapshot() {
    const entries = [...this.data];
    return () => new TextEncoder().encode(JSON.stringify(entries));
  }
  restore(bytes: Uint8Array): void {
    this.data.clear();
    for (const [key, value] of JSON.parse(new TextDecoder().decode(bytes)) as [string, string][]) this.data.set(key, value);
  }
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function leaderOf(nodes: readonly SynodNode<Op, Test, string, string, string | undefined>[], except?: string) {
  for (let attempt = 0; attempt < 400; attempt += 1) {
    const leader = nodes.find((node) => node.id !== except && node.status().role === "leader");
    if (leader !== undefined) return leader;
    await sleep(5);
  }
  throw new Error("no leader elected within 2 s");
}

async function main(): Promise<void> {
  const network = new MemoryNetwork();
  const voters = ["alpha", "beta", "gamma"];
  const stores = voters.map(() => new Store());
  const nodes = voters.map(
    (id, index) =>
      new SynodNode({ id, voters, storage: new MemoryStorage(), transport: network.transport(id), stateMachine: stores[index] as Store, tickMs: 10 }),
  );
  for (const node of nodes) node.on("leader", (leader) => say(`  [${node.id}] now follows ${leader ?? "nobody"}`));
  await Promise.all(nodes.map((node) => node.start()));
  say("started 3 replicas: alpha, beta, gamma (in-memory network and storage)");

  let leader = await leaderOf(nodes);
  say(`elected ${leader.id} (ballot ${leader.status().promised.round}.${leader.status().promised.node})`);

  const follower = nodes.find((node) => node !== leader) as (typeof nodes)[number];
  while (follower.status().leader === undefined) await sleep(5);
  try {
    await follower.propose({ type: "set", key: "x", value: "1" });
  } catch (error) {
    if (error instanceof NotLeaderError) say(`${follower.id} refuses a proposal: NOT_LEADER, hint ${error.leaderHint}`);
  }

  say(`chose ${await leader.propose({ type: "set", key: "greeting", value: "hello" })} for greeting`);
  const counts = await Promise.all(Array.from({ length: 100 }, () => leader.propose({ type: "incr", key: "counter" })));
  say(`100 concurrent increments, batched into slots: counter=${Math.max(...counts.map(Number))} (slots so far: ${leader.status().firstUnchosen})`);
  const cas = await leader.proposeMulti({
    guard: [{ type: "equals", key: "greeting", value: "hello" }],
    top: [{ type: "set", key: "greeting", value: "hello, paxos" }],
    fop: [],
  });
  say(`MultiOp compare-and-set on greeting: ${cas.succeeded ? "guard held, top applied" : "guard failed, fop applied"}`);
  say(`linearizable read (read index): greeting=${await leader.read("greeting")}`);

  say(`cutting ${leader.id} off from the others...`);
  network.isolate(leader.id, voters);
  const old = leader;
  leader = await leaderOf(nodes, old.id);
  say(`elected ${leader.id} (ballot ${leader.status().promised.round}.${leader.status().promised.node})`);
  say(`chose ${await leader.propose({ type: "incr", key: "counter" })} for counter on the new leader`);
  network.heal();
  say(`healed the network; ${old.id} rejoins`);
  for (let attempt = 0; attempt < 200; attempt += 1) {
    if (stores.every((store) => store.applied.length === (stores[0] as Store).applied.length)) break;
    await sleep(10);
  }
  for (const [index, node] of nodes.entries()) {
    const store = stores[index] as Store;
    say(`${node.id}: ${node.status().role}, applied ${store.applied.length} operations, counter=${store.data.get("counter")}, greeting=${store.data.get("greeting")}`);
  }
  const same = stores.every((store) => store.applied.join("|") === (stores[0] as Store).applied.join("|"));
  say(same ? "every replica applied the same operations in the same order" : "REPLICAS DIVERGED");
  await Promise.all(nodes.map((node) => node.stop()));
  if (!same) process.exit(1);
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
