import { randomBytes } from "node:crypto";
import { type Socket, connect } from "node:net";
import type { Message } from "@synod/core";
import { SynodServer, WsTransport, silentLogger } from "@synod/transport-ws";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { FaultProxy } from "../src/index.js";

/** One replica: its server behind its proxy, its transport dialing the other proxies, and the heartbeats it received. */
interface Replica {
  readonly id: string;
  readonly server: SynodServer;
  readonly proxy: FaultProxy;
  readonly transport: WsTransport;
  /** Where members reach it: its proxy. */
  readonly url: string;
  /** `[from, round]` of each heartbeat delivered, in order. */
  readonly received: [string, number][];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A replica's listener: its server (clients get their `status` echoed) behind a `FaultProxy`, closed after the test. */
async function startListener(id: string, peers: readonly string[], secret: string | undefined, seed: number, onPeerMessage: (message: Message) => void) {
  const server = new SynodServer({
    self: id,
    clusterId: "chaos",
    host: "127.0.0.1",
    port: 0,
    peers,
    secret,
    logger: silentLogger,
    onPeerMessage,
    clients: { handle: async (body) => ({ ok: true, result: { replica: id, kind: body.kind } }) },
  });
  const port = await server.listen();
  cleanups.push(() => server.close());
  const proxy = new FaultProxy({ target: { host: "127.0.0.1", port }, seed });
  const proxyPort = await proxy.listen();
  cleanups.push(() => proxy.close());
  return { server, proxy, proxyPort, url: `ws://127.0.0.1:${proxyPort}` };
}

/** Replicas `ids`, each behind a `FaultProxy` seeded with `seed`; every member URL is a proxy's. */
async function startCluster(ids: readonly string[], seed = 1, pingIntervalMs = 5_000): Promise<Map<string, Replica>> {
  const listeners = new Map<string, { server: SynodServer; proxy: FaultProxy; url: string; received: [string, number][] }>();
  const transports = new Map<string, WsTransport>();
  for (const id of ids) {
    const listener = await startListener(id, ids, "s3cret", seed, (message) => transports.get(id)?.deliver(message));
    listeners.set(id, { ...listener, received: [] });
  }
  const replicas = new Map<string, Replica>();
  for (const [id, listener] of listeners) {
    const transport = new WsTransport({
      self: id,
      clusterId: "chaos",
      peers: ids.map((peer) => ({ id: peer, url: listeners.get(peer)?.url as string })),
      secret: "s3cret",
      logger: silentLogger,
      link: { reconnectMinMs: 10, reconnectMaxMs: 50, pingIntervalMs },
    });
    transport.onMessage((message) => {
      if (message.type === "heartbeat") listener.received.push([message.from, message.round]);
    });
    cleanups.push(() => transport.close());
    transports.set(id, transport);
    replicas.set(id, { id, transport, ...listener });
  }
  return replicas;
}

function replica(cluster: Map<string, Replica>, id: string): Replica {
  const found = cluster.get(id);
  if (found === undefined) throw new Error(`no replica ${id}`);
  return found;
}

function heartbeat(from: string, to: string, round: number): Message {
  return { type: "heartbeat", from, to, ballot: { round: 1, node: from }, firstUnchosen: 0, round, logTime: 0 };
}

/** Sends heartbeats `rounds` from `from` to `to`. */
function send(cluster: Map<string, Replica>, from: string, to: string, rounds: readonly number[]): void {
  for (const round of rounds) replica(cluster, from).transport.send(heartbeat(from, to, round));
}

/** The rounds `to` received from `from`, in order of delivery. */
function rounds(cluster: Map<string, Replica>, to: string, from: string): number[] {
  return replica(cluster, to)
    .received.filter(([sender]) => sender === from)
    .map(([, round]) => round);
}

function range(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => start + index);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const poll = { timeout: 5_000, interval: 5 };

/** The round of the heartbeat `warmUp` sends (rounds are non-negative on the wire). */
const WARM_UP = 9_999;

/** Sends one heartbeat each way between `a` and `b` and waits for both, so both links are up. */
async function warmUp(cluster: Map<string, Replica>, a: string, b: string): Promise<void> {
  send(cluster, a, b, [WARM_UP]);
  send(cluster, b, a, [WARM_UP]);
  await expect.poll(() => rounds(cluster, b, a).includes(WARM_UP) && rounds(cluster, a, b).includes(WARM_UP), poll).toBe(true);
}

describe("FaultProxy on peer links", () => {
  it("forwards messages both ways and learns which replica dialed", async () => {
    const cluster = await startCluster(["a", "b", "c"]);
    send(cluster, "a", "b", range(0, 20));
    send(cluster, "c", "b", range(100, 20));
    send(cluster, "b", "a", range(200, 20));
    await expect.poll(() => replica(cluster, "b").received.length, poll).toBe(40);
    await expect.poll(() => replica(cluster, "a").received.length, poll).toBe(20);
    expect(rounds(cluster, "b", "a")).toEqual(range(0, 20));
    expect(rounds(cluster, "b", "c")).toEqual(range(100, 20));
    expect(rounds(cluster, "a", "b")).toEqual(range(200, 20));
    const b = replica(cluster, "b").proxy;
    expect(b.sources()).toEqual(["a", "c"]);
    expect(replica(cluster, "a").proxy.sources()).toEqual(["b"]);
    expect(b.statistics).toMatchObject({ connections: 2, framesForwarded: 40, framesDropped: 0, cutConnections: 0 });
  });

  it("cut A→B stops A's messages to B, not B's to A, and they flow again once healed", async () => {
    const cluster = await startCluster(["a", "b"]);
    await warmUp(cluster, "a", "b");
    const proxyB = replica(cluster, "b").proxy;
    proxyB.setLink("a", { cut: true });
    expect(proxyB.sources()).toEqual([]);
    send(cluster, "a", "b", range(0, 10));
    send(cluster, "b", "a", range(0, 10));
    await expect.poll(() => rounds(cluster, "a", "b").length, poll).toBe(11);
    // A keeps redialing; each attempt is refused once its hello names it.
    await expect.poll(() => proxyB.statistics.cutConnections, poll).toBeGreaterThanOrEqual(3);
    expect(rounds(cluster, "b", "a")).toEqual([WARM_UP]);

    proxyB.setLink("a", {});
    send(cluster, "a", "b", range(100, 10));
    await expect.poll(() => rounds(cluster, "b", "a").filter((round) => round >= 100 && round < WARM_UP), poll).toEqual(range(100, 10));
    expect(proxyB.sources()).toEqual(["a"]);
  });

  it("drop: 1 loses every msg frame, yet the handshake completes and pings keep the link up", async () => {
    const cluster = await startCluster(["a", "b"], 1, 30);
    const b = replica(cluster, "b");
    b.proxy.setLink("a", { drop: 1 });
    send(cluster, "a", "b", range(0, 20));
    await expect.poll(() => b.proxy.statistics.framesDropped, poll).toBe(20);
    expect(b.server.statistics.peersAccepted).toBe(1);
    expect(replica(cluster, "a").transport.statistics().b).toMatchObject({ connected: true, connects: 1 });
    expect(b.proxy.sources()).toEqual(["a"]);
    // Several ping intervals: a lost ping would have the link torn down for want of a pong.
    await sleep(200);
    expect(replica(cluster, "a").transport.statistics().b).toMatchObject({ connected: true, connects: 1 });
    expect(b.server.statistics.peerMessages).toBe(0);
    expect(b.received).toEqual([]);
    expect(b.proxy.statistics.framesForwarded).toBe(0);
  });

  it("duplicate: 1 delivers each message twice, in order", async () => {
    const cluster = await startCluster(["a", "b"]);
    const proxyB = replica(cluster, "b").proxy;
    proxyB.setLink("a", { duplicate: 1 });
    send(cluster, "a", "b", range(0, 20));
    await expect.poll(() => rounds(cluster, "b", "a").length, poll).toBe(40);
    expect(rounds(cluster, "b", "a")).toEqual(range(0, 20).flatMap((round) => [round, round]));
    expect(proxyB.statistics).toMatchObject({ framesDuplicated: 20, framesForwarded: 40 });
  });

  it("delayMs holds A's messages to B behind B's to A; with jitter they still arrive in order", async () => {
    const cluster = await startCluster(["a", "b"]);
    await warmUp(cluster, "a", "b");
    replica(cluster, "b").proxy.setLink("a", { delayMs: 200 });
    const sentAt = performance.now();
    send(cluster, "a", "b", [0]);
    send(cluster, "b", "a", [0]);
    await expect.poll(() => rounds(cluster, "a", "b"), poll).toEqual([WARM_UP, 0]);
    expect(rounds(cluster, "b", "a")).toEqual([WARM_UP]);
    await expect.poll(() => rounds(cluster, "b", "a"), poll).toEqual([WARM_UP, 0]);
    expect(performance.now() - sentAt).toBeGreaterThanOrEqual(190);

    replica(cluster, "b").proxy.setLink("a", { delayMs: 5, jitterMs: 40 });
    send(cluster, "a", "b", range(1, 50));
    await expect.poll(() => rounds(cluster, "b", "a").length, poll).toBe(52);
    expect(rounds(cluster, "b", "a")).toEqual([WARM_UP, ...range(0, 51)]);
  });

  it("reorder with a delay delivers some messages out of order, and the same seed replays the same order", async () => {
    const deliveredOrder = async (seed: number) => {
      const cluster = await startCluster(["a", "b"], seed);
      const proxyB = replica(cluster, "b").proxy;
      proxyB.setLink("a", { delayMs: 100, reorder: 0.3 });
      send(cluster, "a", "b", range(0, 100));
      await expect.poll(() => rounds(cluster, "b", "a").length, poll).toBe(100);
      expect(proxyB.statistics.framesReordered).toBeGreaterThan(0);
      return rounds(cluster, "b", "a");
    };
    const first = await deliveredOrder(7);
    expect([...first].sort((x, y) => x - y)).toEqual(range(0, 100));
    expect(first.some((round, index) => index > 0 && round < (first[index - 1] as number))).toBe(true);
    expect(await deliveredOrder(7)).toEqual(first);
    expect(await deliveredOrder(8)).not.toEqual(first);
  });
});

/** A raw client connection to `url`'s `/client`; rejects if it does not open. */
function openClient(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url}/client`, { perMessageDeflate: false });
    cleanups.push(() => socket.terminate());
    socket.once("open", () => resolve(socket));
    socket.once("error", reject);
    socket.once("close", () => reject(new Error("closed before it opened")));
  });
}

/** Sends a `status` request; resolves with the response's result. */
function status(socket: WebSocket, id: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    socket.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as { id: number; result: unknown };
      if (frame.id === id) resolve(frame.result);
    });
    socket.once("close", () => reject(new Error("closed before the response")));
    socket.send(JSON.stringify({ v: 1, t: "request", id, body: { kind: "status" } }));
  });
}

describe("FaultProxy on client connections", () => {
  it("passes clients through, cuts them with setLink(\"clients\"), and leaves peer links alone", async () => {
    const cluster = await startCluster(["a", "b"]);
    const a = replica(cluster, "a");
    const client = await openClient(a.url);
    expect(await status(client, 1)).toEqual({ replica: "a", kind: "status" });
    expect(a.proxy.sources()).toEqual(["clients"]);

    const closed = new Promise<number>((resolve) => client.once("close", (code) => resolve(code)));
    a.proxy.setLink("clients", { cut: true });
    expect(await closed).toBe(1006);
    await expect(openClient(a.url)).rejects.toThrow();
    expect(a.proxy.statistics.cutConnections).toBe(2);
    send(cluster, "b", "a", [0]);
    await expect.poll(() => rounds(cluster, "a", "b"), poll).toEqual([0]);

    a.proxy.setLink("clients", {});
    expect(await status(await openClient(a.url), 2)).toEqual({ replica: "a", kind: "status" });
  });

  it("delayMs holds client traffic both ways", async () => {
    const cluster = await startCluster(["a"]);
    const a = replica(cluster, "a");
    const client = await openClient(a.url);
    a.proxy.setLink("clients", { delayMs: 100 });
    const start = performance.now();
    expect(await status(client, 1)).toEqual({ replica: "a", kind: "status" });
    expect(performance.now() - start).toBeGreaterThanOrEqual(190);
  });
});

/** A masked client frame, as a WebSocket client sends it, with a 7-, 16- or 64-bit length as its size needs. */
function clientFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const first = (fin ? 0x80 : 0) | opcode;
  let header: Buffer;
  if (payload.length < 126) header = Buffer.from([first, 0x80 | payload.length]);
  else if (payload.length < 65_536) {
    header = Buffer.from([first, 0x80 | 126, 0, 0]);
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header.writeUInt8(first, 0);
    header.writeUInt8(0x80 | 127, 1);
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((byte, index) => byte ^ mask.readUInt8(index & 3)));
  return Buffer.concat([header, mask, masked]);
}

/** Writes `bytes` in pieces of `size`, each in its own turn of the event loop, so they arrive in many TCP chunks. */
async function trickle(socket: Socket, bytes: Buffer, size: number): Promise<void> {
  for (let offset = 0; offset < bytes.length; offset += size) {
    socket.write(bytes.subarray(offset, offset + size));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("FaultProxy's frame reader", () => {
  it("reads a dialer's frames however they are cut: byte by byte, fragmented around a ping, 16- and 64-bit lengths", async () => {
    const delivered: number[] = [];
    // No secret (a plaintext loopback cluster), so a hand-written hello passes.
    const { server, proxy, proxyPort } = await startListener("a", ["a", "z"], undefined, 1, (message) => delivered.push(message.type === "heartbeat" ? message.round : -1));
    proxy.setLink("z", { duplicate: 1 });

    const dialer = connect({ host: "127.0.0.1", port: proxyPort, noDelay: true });
    cleanups.push(() => void dialer.destroy());
    let heard = "";
    dialer.on("data", (chunk: Buffer) => (heard += chunk.toString("latin1")));
    const key = randomBytes(16).toString("base64");
    dialer.write(`GET /peer HTTP/1.1\r\nHost: 127.0.0.1:${proxyPort}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await expect.poll(() => heard.includes('"t":"challenge"'), poll).toBe(true);

    const hello = Buffer.from(JSON.stringify({ v: 1, t: "hello", nodeId: "z", nonce: "1".repeat(64), mac: "0".repeat(64) }));
    const halfway = Math.floor(hello.length / 2);
    await trickle(dialer, Buffer.concat([clientFrame(0x1, hello.subarray(0, halfway), false), clientFrame(0x9, Buffer.from("ping")), clientFrame(0x0, hello.subarray(halfway))]), 1);
    await expect.poll(() => heard.includes('"t":"welcome"'), poll).toBe(true);
    expect(proxy.sources()).toEqual(["z"]);

    const msg = (round: number, padding: number) => Buffer.from(JSON.stringify({ v: 1, t: "msg", m: heartbeat("z", "a", round) }) + " ".repeat(padding));
    const frames = [clientFrame(0x1, msg(1, 70_000)), clientFrame(0x1, msg(2, 300)), clientFrame(0x1, msg(3, 0))];
    await trickle(dialer, Buffer.concat(frames), 997);
    await expect.poll(() => delivered, poll).toEqual([1, 1, 2, 2, 3, 3]);
    expect(server.statistics).toMatchObject({ peersAccepted: 1, badFrames: 0 });
    expect(proxy.statistics).toMatchObject({ framesForwarded: 6, framesDuplicated: 3 });
  });
});

describe("FaultProxy's arguments", () => {
  it("refuses faults it cannot apply, and a target off loopback, with the reason", () => {
    const proxy = new FaultProxy({ target: { host: "127.0.0.1", port: 9 }, seed: 1 });
    expect(() => proxy.setLink("a", { drop: 1.5 })).toThrow(/drop is a probability in \[0, 1\]/);
    expect(() => proxy.setLink("a", { delayMs: -1 })).toThrow(/delayMs is a non-negative number/);
    expect(() => new FaultProxy({ target: { host: "10.0.0.1", port: 9 }, seed: 1 })).toThrow(/loopback only/);
  });
});
