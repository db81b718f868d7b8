/**
 * Helpers for the partition tests (`partitions.test.ts`): a client's own
 * network to the cluster, which a test can cut and heal, and the small
 * readers of the lock service's state the tests assert on.
 *
 * Only sockets and processes these helpers made are ever touched.
 */
import { type Server, type Socket, connect, createServer } from "node:net";
import type { LockClient, LockEvent, LockQueryResult } from "../src/index.js";
import { until } from "./cluster.js";

// ---------------------------------------------------------------- a client's network, cut and healed

/**
 * What stands between one client (an in-process `LockClient`, the CLI) and
 * the cluster: a TCP relay on loopback in front of each replica. The client
 * is given only `urls`, the relays'. `cut()` makes every replica unreachable
 * from it, as a partition on the client's side does: bytes in flight and
 * after are swallowed in both directions and new connections are accepted
 * but lead nowhere, so requests time out rather than fail fast. `heal()`
 * resets the connections that were cut (their streams lost bytes: the client
 * reconnects) and relays again.
 *
 * A follower answers a client with `NOT_LEADER` and the leader's own URL,
 * which the client then dials directly, around the relays. So each relay
 * rewrites, in what replicas send back, every replica URL into its relay's
 * URL: the client stays on this network whatever it is told.
 */
export class ClientNetwork {
  private readonly relays: ReplicaRelay[] = [];
  private cutSince: number | undefined;

  private constructor() {}

  /** Starts one relay per replica URL. */
  static async start(replicaUrls: readonly string[]): Promise<ClientNetwork> {
    const network = new ClientNetwork();
    try {
      for (const url of replicaUrls) network.relays.push(await ReplicaRelay.start(url, (text) => network.toRelayUrls(text)));
    } catch (error) {
      await network.close();
      throw error;
    }
    return network;
  }

  /** The endpoints to give the client: the relays', in the order of the replica URLs. */
  get urls(): string[] {
    return this.relays.map((relay) => relay.url);
  }

  /** Whether the network is cut now. */
  get isCut(): boolean {
    return this.cutSince !== undefined;
  }

  /** Cuts the client off from every replica. */
  cut(): void {
    this.cutSince = performance.now();
    for (const relay of this.relays) relay.cut();
  }

  /** Reconnects the client to every replica. */
  heal(): void {
    this.cutSince = undefined;
    for (const relay of this.relays) relay.heal();
  }

  async close(): Promise<void> {
    await Promise.all(this.relays.map((relay) => relay.close()));
  }

  /** `text` with every replica URL replaced by its relay's. */
  private toRelayUrls(text: string): string {
    let rewritten = text;
    for (const relay of this.relays) rewritten = rewritten.split(relay.targetUrl).join(relay.url);
    return rewritten;
  }
}

/** One client connection through a relay: the client's socket and the replica's. */
interface Link {
  readonly downstream: Socket;
  readonly upstream: Socket | undefined;
  /** Cut: nothing passes, in either direction, until the link is reset. */
  cut: boolean;
}

/** A TCP relay in front of one replica (see `ClientNetwork`). */
class ReplicaRelay {
  private readonly links = new Set<Link>();
  private isCut = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly targetUrl: string,
    private readonly rewrite: (text: string) => string,
  ) {}

  static async start(targetUrl: string, rewrite: (text: string) => string): Promise<ReplicaRelay> {
    let relay: ReplicaRelay | undefined;
    const server = createServer((socket) => relay?.accept(socket));
    const port = await new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        resolve(typeof address === "object" && address !== null ? address.port : 0);
      });
    });
    relay = new ReplicaRelay(server, port, targetUrl, rewrite);
    return relay;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  cut(): void {
    this.isCut = true;
    for (const link of this.links) link.cut = true;
  }

  heal(): void {
    this.isCut = false;
    for (const link of [...this.links]) if (link.cut) this.end(link);
  }

  async close(): Promise<void> {
    for (const link of [...this.links]) this.end(link);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(downstream: Socket): void {
    if (this.isCut) {
      // Accepted, and then nothing: a handshake that times out, as across a partition.
      const link: Link = { downstream, upstream: undefined, cut: true };
      this.links.add(link);
      downstream.on("data", () => undefined);
      downstream.on("error", () => this.end(link));
      downstream.on("close", () => this.end(link));
      return;
    }
    const upstream = connect(portOf(this.targetUrl), "127.0.0.1");
    const link: Link = { downstream, upstream, cut: false };
    this.links.add(link);
    const replies = new ReplyRewriter(this.rewrite);
    downstream.on("data", (chunk: Buffer) => {
      if (!link.cut) upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (link.cut) return;
      for (const part of replies.push(chunk)) downstream.write(part);
    });
    for (const socket of [downstream, upstream]) {
      socket.on("error", () => this.end(link));
      socket.on("close", () => this.end(link));
    }
  }

  private end(link: Link): void {
    link.downstream.destroy();
    link.upstream?.destroy();
    this.links.delete(link);
  }
}

/**
 * Rewrites the text frames a replica sends on one WebSocket connection. The
 * HTTP upgrade answer passes as it is; after it, each complete frame is
 * passed on, a whole unmasked text frame with its payload rewritten (replicas
 * send every message as one frame, without compression), anything else as
 * it came.
 */
class ReplyRewriter {
  private pending: Buffer = Buffer.alloc(0);
  private upgraded = false;

  constructor(private readonly rewrite: (text: string) => string) {}

  /** Takes bytes from the replica; returns the bytes to send the client now. */
  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    if (!this.upgraded) {
      const end = this.pending.indexOf("\r\n\r\n");
      if (end < 0) return out;
      out.push(this.pending.subarray(0, end + 4));
      this.pending = this.pending.subarray(end + 4);
      this.upgraded = true;
    }
    for (;;) {
      const frame = nextFrame(this.pending);
      if (frame === undefined) return out;
      this.pending = this.pending.subarray(frame.size);
      out.push(frame.text === undefined ? frame.raw : textFrame(this.rewrite(frame.text)));
    }
  }
}

/** The first complete WebSocket frame in `bytes` (RFC 6455 §5.2), or undefined while it is incomplete. */
function nextFrame(bytes: Buffer): { size: number; raw: Buffer; text: string | undefined } | undefined {
  if (bytes.length < 2) return undefined;
  const first = bytes[0] as number;
  const second = bytes[1] as number;
  const masked = (second & 0x80) !== 0;
  let length = second & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (bytes.length < 4) return undefined;
    length = bytes.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (bytes.length < 10) return undefined;
    length = Number(bytes.readBigUInt64BE(2));
    offset = 10;
  }
  if (masked) offset += 4;
  const size = offset + length;
  if (bytes.length < size) return undefined;
  const raw = bytes.subarray(0, size);
  const wholeText = (first & 0x80) !== 0 && (first & 0x0f) === 0x1 && !masked;
  return { size, raw, text: wholeText ? bytes.subarray(offset, size).toString("utf8") : undefined };
}

/** A whole, unmasked text frame (what a server sends). */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text, "utf8");
  let header: Buffer;
  if (payload.length < 126) {
    header = Buffer.from([0x81, payload.length]);
  } else if (payload.length < 0x10000) {
    header = Buffer.alloc(4);
    header[0] = 0x81;
    header[1] = 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x81;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([header, payload]);
}

function portOf(url: string): number {
  return Number(new URL(url.replace(/^ws/, "http")).port);
}

// ---------------------------------------------------------------- reading the lock service

/** Every event about `lock`, oldest first (the events query pages through the whole retained log). */
export async function lockEvents(client: LockClient, lock: string): Promise<LockEvent[]> {
  const events: LockEvent[] = [];
  let from = 1;
  for (let page = 0; page < 100; page += 1) {
    const result = await client.client.read<LockQueryResult>({ type: "events", from, limit: 10_000 });
    if (result.type !== "events") throw new Error(`events query failed: ${JSON.stringify(result)}`);
    if (result.events.length === 0) return events.filter((event) => "lock" in event && event.lock === lock);
    events.push(...result.events);
    from = result.next;
  }
  throw new Error("more than 100 pages of events");
}

/** Events as short strings (`acquired <who>`, `released <who> <reason>`...), sessions named by `names`, for readable assertions. */
export function describeEvents(events: readonly LockEvent[], names: ReadonlyMap<string, string>): string[] {
  const who = (session: string) => names.get(session) ?? session.slice(0, 8);
  return events.map((event) => {
    switch (event.type) {
      case "acquired":
        return `acquired ${who(event.session)}`;
      case "released":
        return `released ${who(event.session)} ${event.reason}`;
      case "queued":
        return `queued ${who(event.session)}`;
      case "dequeued":
        return `dequeued ${who(event.session)} ${event.reason}`;
      default:
        return event.type;
    }
  });
}

/** Waits until every session in `sessions` is queued for `lock`. */
export async function waitUntilQueued(client: LockClient, lock: string, sessions: readonly string[], timeoutMs = 5_000): Promise<void> {
  await until(
    async () => {
      const waiting = new Set((await client.lock(lock)).waiters.map((waiter) => waiter.session));
      return sessions.every((session) => waiting.has(session));
    },
    timeoutMs,
    `${sessions.length} session(s) to queue for ${lock}`,
  );
}

/** `held <token> <session>` from the holder fixture. */
export function parseHeld(line: string): { token: number; session: string } {
  const [, token, session] = line.split(" ");
  return { token: Number(token), session: session as string };
}

/**
 * Samples a session's local deadline (`now + remainingMs`, on this process's
 * monotonic clock) every `intervalMs` until stopped: the latest deadline it
 * was ever given. A keepalive answered with more time than the log grants
 * shows here as a deadline that moved on.
 */
export function sampleDeadline(session: { readonly remainingMs: number }, intervalMs = 5): { readonly latest: number; stop(): number } {
  let latest = performance.now() + session.remainingMs;
  const timer = setInterval(() => {
    latest = Math.max(latest, performance.now() + session.remainingMs);
  }, intervalMs);
  return {
    get latest() {
      return Math.max(latest, performance.now() + session.remainingMs);
    },
    stop() {
      clearInterval(timer);
      latest = Math.max(latest, performance.now() + session.remainingMs);
      return latest;
    },
  };
}

/** One figure per line on stdout, prefixed, for the test log: what a run measured. */
export function report(what: string, figures: Record<string, number | string | boolean>): void {
  const text = Object.entries(figures)
    .map(([key, value]) => `${key}=${typeof value === "number" ? Math.round(value) : value}`)
    .join(" ");
  process.stdout.write(`[partitions] ${what}: ${text}\n`);
}
