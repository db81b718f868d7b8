import { type ApplyContext, MemoryStorage, type StateMachine, SynodNode } from "@synod/core";
import { afterEach, describe, expect, it } from "vitest";
import { SynodClient, SynodServer, WsTransport, nodeClientHandler, silentLogger } from "../src/index.js";

/** A tiny KV map: put returns null, append returns the new value, get returns the value. */
type Op = { type: "put" | "append"; key: string; value: string } | { type: "get"; key: string };
class Kv implements StateMachine<Op, { key: string; value: string }, string | null, { key: string }, string> {
  data = new Map<string, string>();
  apply(op: Op, _context: ApplyContext): string | null {
    if (op.type === "get") return this.data.get(op.key) ?? "";
    const next = op.type === "put" ? op.value : (this.data.get(op.key) ?? "") + op.value;
    this.data.set(op.key, next);
    return op.type === "append" ? next : null;
  }
  test(test: { key: string; value: string }): boolean {
    return (this.data.get(test.key) ?? "") === test.value;
  }
  query(query: { key: string }): string {
    return this.data.get(query.key) ?? "";
  }
  snapshot() {
    const entries = [...this.data];
    return () => new TextEncoder().encode(JSON.stringify(entries));
  }
  restore(data: Uint8Array): void {
    this.data = new Map(JSON.parse(new TextDecoder().decode(data)));
  }
}

interface Running {
  node: SynodNode;
  server: SynodServer;
  transport: WsTransport;
  machine: Kv;
  url: string;
}

const running: Running[] = [];
afterEach(async () => {
  for (const member of running.splice(0)) {
    await member.node.stop();
    await member.server.close();
  }
});

async function startCluster(secret: string | undefined): Promise<Running[]> {
  const ids = ["a", "b", "c"];
  // Bind first (port 0), then tell everyone the endpoints.
  const servers = new Map<string, { server: SynodServer; port: number; transport: () => WsTransport | undefined }>();
  const transports = new Map<string, WsTransport>();
  const nodes = new Map<string, SynodNode>();
  for (const id of ids) {
    const server = new SynodServer({
      self: id,
      clusterId: "test",
      host: "127.0.0.1",
      port: 0,
      peers: ids,
      secret,
      logger: silentLogger,
      onPeerMessage: (message) => transports.get(id)?.deliver(message),
      clients: { handle: (body) => nodeClientHandler(nodes.get(id) as SynodNode, (peer) => urls.get(peer)).handle(body) },
    });
    servers.set(id, { server, port: await server.listen(), transport: () => transports.get(id) });
  }
  const urls = new Map(ids.map((id) => [id, `ws://127.0.0.1:${servers.get(id)?.port}`]));
  for (const id of ids) {
    const transport = new WsTransport({
      self: id,
      clusterId: "test",
      peers: ids.map((peer) => ({ id: peer, url: urls.get(peer) as string })),
      secret,
      logger: silentLogger,
    });
    transports.set(id, transport);
    const machine = new Kv();
    const node = new SynodNode({ id, voters: ids, storage: new MemoryStorage(), transport, stateMachine: machine, tickMs: 10 });
    nodes.set(id, node);
    await node.start();
    running.push({ node, server: servers.get(id)?.server as SynodServer, transport, machine, url: urls.get(id) as string });
  }
  return running;
}

describe("a cluster over WebSocket", () => {
  it("elects a leader, and a client's commands and reads go through whichever replica it reaches", async () => {
    const members = await startCluster("s3cret");
    const client = new SynodClient({ urls: members.map((member) => member.url) });
    try {
      expect(await client.propose({ type: "put", key: "x", value: "1" })).toBeNull();
      const appends = await Promise.all(["a", "b", "c", "d"].map((value) => client.propose<string>({ type: "append", key: "y", value })));
      expect(appends.map((result) => result.length).sort()).toEqual([1, 2, 3, 4]);
      expect(await client.read({ key: "x" })).toBe("1");
      const cas = await client.proposeMulti({ guard: [{ key: "x", value: "1" }], top: [{ type: "put", key: "x", value: "2" }], fop: [] });
      expect(cas.succeeded).toBe(true);
      expect(await client.read({ key: "x" })).toBe("2");
    } finally {
      await client.close();
    }
    for (const member of members) expect(member.server.statistics.peersRejected).toBe(0);
  });
});
