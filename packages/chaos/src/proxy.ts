import { type Server, type Socket, connect, createServer } from "node:net";
import { SeededRandom, invariant } from "@synod/core";

/**
 * What goes wrong on one link into the proxied replica. A link is one
 * source: a replica id (the peer connection that replica dials into this
 * one) or `"clients"` (every client connection into this replica).
 *
 * `drop`, `duplicate` and `reorder` strike whole peer `msg` messages only:
 * never the handshake (`challenge`, `hello`, `welcome`), never control frames
 * (ping, pong, close), which pass untouched. On client connections only `cut`
 * and the hold (`delayMs` + `jitterMs`, both directions, order kept) apply.
 */
export interface LinkFaults {
  /** Destroys the link's open connections and refuses new ones until the link is set without it. */
  readonly cut?: boolean;
  /** Holds each message (each chunk, on client connections) this long before forwarding it. */
  readonly delayMs?: number;
  /** Adds a hold drawn uniformly from `[0, jitterMs)`; messages still leave in order unless `reorder`. */
  readonly jitterMs?: number;
  /** Probability (0..1) that a peer message is discarded. */
  readonly drop?: number;
  /** Probability (0..1) that a peer message is forwarded twice. */
  readonly duplicate?: number;
  /** Probability (0..1) that a peer message overtakes the one held just before it (needs a hold to act). */
  readonly reorder?: number;
}

/** Counters over the proxy's life. "Frames" are peer `msg` messages (one frame each, unless fragmented). */
export interface ProxyStatistics {
  /** TCP connections accepted, refused ones included. */
  connections: number;
  /** Peer messages written to the replica, duplicate copies included. */
  framesForwarded: number;
  /** Peer messages that never reached the replica: drawn by `drop`, over the hold cap, or held when their connection closed. */
  framesDropped: number;
  /** Peer messages forwarded twice. */
  framesDuplicated: number;
  /** Peer messages that overtook the one held before them. */
  framesReordered: number;
  /** Connections destroyed or refused because their link was cut. */
  cutConnections: number;
}

export interface FaultProxyOptions {
  /** The replica's real listener; loopback only. */
  readonly target: { readonly host: string; readonly port: number };
  /** The port to listen on at 127.0.0.1; 0 (the default) picks a free one. */
  readonly port?: number;
  /** Seeds every fault draw: each link draws from its own generator, seeded from this and its source. */
  readonly seed: number;
  /** Most peer messages held (delayed) per link; more are dropped and counted (default 4 096). */
  readonly maxHeldFramesPerLink?: number;
  /** Most bytes held per link; messages beyond are dropped and counted (default 64 MiB). */
  readonly maxHeldBytesPerLink?: number;
  /**
   * Largest WebSocket message the proxy buffers whole (default 32 MiB, over
   * the replicas' own 16 MiB limit so they, not the proxy, refuse big ones);
   * a larger one closes its connection.
   */
  readonly maxMessageBytes?: number;
}

/**
 * A TCP proxy in front of one replica, for a chaos campaign on loopback.
 * Every member URL points at its replica's proxy, so every connection into
 * a replica passes through it. It reads the HTTP upgrade request to tell
 * `/peer` from `/client`, reads the WebSocket frames a peer dials with to
 * learn its id from `hello`, and then applies each link's faults, drawing
 * from seeded generators so a run replays its draws: a peer link's draws
 * are a fixed function of its messages and faults, whatever the timing.
 */
export class FaultProxy {
  readonly statistics: ProxyStatistics = {
    connections: 0,
    framesForwarded: 0,
    framesDropped: 0,
    framesDuplicated: 0,
    framesReordered: 0,
    cutConnections: 0,
  };
  private readonly server: Server;
  private readonly links = new Map<string, Link>();
  private readonly relays = new Set<Relay>();
  private readonly context: RelayContext;
  private closed = false;

  constructor(private readonly options: FaultProxyOptions) {
    const { host, port } = options.target;
    if (!isLoopback(host)) throw new RangeError(`FaultProxy proxies loopback only; target host ${host} is not 127.0.0.1, ::1 or localhost`);
    if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new RangeError(`target port must be 1..65535, got ${port}`);
    this.context = {
      target: options.target,
      statistics: this.statistics,
      link: (source) => this.link(source),
      forget: (relay) => this.relays.delete(relay),
      maxHeldFrames: options.maxHeldFramesPerLink ?? 4_096,
      maxHeldBytes: options.maxHeldBytesPerLink ?? 64 * 1024 * 1024,
      maxMessageBytes: options.maxMessageBytes ?? 32 * 1024 * 1024,
    };
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  /** Starts listening on 127.0.0.1; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port ?? 0, "127.0.0.1", () => {
        this.server.off("error", reject);
        const address = this.server.address();
        invariant(typeof address === "object" && address !== null, "a TCP server's address is an object");
        resolve(address.port);
      });
    });
  }

  /**
   * Sets (replaces) the faults of the link from `source`: a replica id or
   * `"clients"`. `{}` heals it. Messages already held keep their times.
   */
  setLink(source: string, faults: LinkFaults): void {
    if (source.length === 0) throw new RangeError("setLink needs a source: a replica id or \"clients\"");
    const reason = invalidFaults(faults);
    if (reason !== undefined) throw new RangeError(`setLink(${source}): ${reason}`);
    const link = this.link(source);
    link.faults = { ...faults };
    if (faults.cut === true) for (const relay of [...link.relays]) relay.cut();
  }

  /** Heals every link. */
  clearAll(): void {
    for (const link of this.links.values()) link.faults = {};
  }

  /** The sources with a connection open through the proxy now (replica ids once they said hello, and `clients`), sorted. */
  sources(): string[] {
    return [...this.links.values()]
      .filter((link) => link.relays.size > 0)
      .map((link) => link.source)
      .sort();
  }

  /** Stops listening and destroys every connection and every held message (and its timer). */
  close(): Promise<void> {
    this.closed = true;
    for (const relay of [...this.relays]) relay.destroy();
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }

  private accept(socket: Socket): void {
    this.statistics.connections += 1;
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.relays.add(new Relay(socket, this.context));
  }

  private link(source: string): Link {
    let link = this.links.get(source);
    if (link === undefined) {
      link = new Link(source, new SeededRandom((this.options.seed ^ hash32(source)) >>> 0));
      this.links.set(source, link);
    }
    return link;
  }
}

/** One source's faults, its open connections and its own generator. */
class Link {
  faults: LinkFaults = {};
  readonly relays = new Set<Relay>();

  constructor(
    readonly source: string,
    private readonly random: SeededRandom,
  ) {}

  /**
   * One message's fate. Every draw a fault calls for is made, whatever the
   * queue holds, so the stream of draws depends only on the messages and the
   * faults in force: the same run draws the same.
   */
  fate(): Fate {
    const { drop = 0, duplicate = 0, reorder = 0 } = this.faults;
    return {
      drop: this.random.chance(drop),
      duplicate: this.random.chance(duplicate),
      overtake: this.random.chance(reorder),
      holdMs: this.holdMs(),
    };
  }

  /** `delayMs` plus a draw from `[0, jitterMs)`. */
  holdMs(): number {
    const { delayMs = 0, jitterMs = 0 } = this.faults;
    return delayMs + (jitterMs > 0 ? this.random.float() * jitterMs : 0);
  }

  heldFrames(): number {
    let frames = 0;
    for (const relay of this.relays) frames += relay.heldFrames;
    return frames;
  }

  heldBytes(): number {
    let bytes = 0;
    for (const relay of this.relays) bytes += relay.heldBytes;
    return bytes;
  }
}

interface Fate {
  readonly drop: boolean;
  readonly duplicate: boolean;
  readonly overtake: boolean;
  readonly holdMs: number;
}

/** What a relay needs from its proxy. */
interface RelayContext {
  readonly target: { readonly host: string; readonly port: number };
  readonly statistics: ProxyStatistics;
  link(source: string): Link;
  forget(relay: Relay): void;
  readonly maxHeldFrames: number;
  readonly maxHeldBytes: number;
  readonly maxMessageBytes: number;
}

/** `pending`: the upgrade request is still arriving; `other`: neither route (or a peer that did not say hello), passed through. */
type Route = "pending" | "peer" | "client" | "other";

/** The upgrade request's head is small; one that never ends within this is passed through unread. */
const MAX_REQUEST_HEAD_BYTES = 16 * 1024;

/**
 * One proxied TCP connection: the dialer's socket, the socket to the
 * replica, and what is held back between them.
 */
class Relay {
  private route: Route = "pending";
  private link: Link | undefined;
  private readonly target: Socket;
  private request: Buffer[] = [];
  private readonly reader: FrameReader;
  /** The frames of the message being read (several when it is fragmented). */
  private message: WireFrame[] = [];
  private messageBytes = 0;
  /** Toward the replica: peer messages, or client chunks. */
  private readonly toTarget: HoldQueue;
  /** Toward the dialer: client chunks only (a peer's replies pass straight). */
  private readonly toDialer: HoldQueue;
  private readonly dialerValve: Valve;
  private readonly targetValve: Valve;
  private destroyed = false;

  constructor(
    private readonly dialer: Socket,
    private readonly context: RelayContext,
  ) {
    this.reader = new FrameReader(context.maxMessageBytes);
    this.target = connect({ host: context.target.host, port: context.target.port, allowHalfOpen: true });
    this.dialerValve = new Valve(dialer);
    this.targetValve = new Valve(this.target);
    this.toTarget = new HoldQueue((item) => this.released(item, this.target, this.toTarget, this.dialerValve));
    this.toDialer = new HoldQueue((item) => this.released(item, this.dialer, this.toDialer, this.targetValve));
    for (const socket of [dialer, this.target]) {
      socket.setNoDelay(true);
      socket.on("error", () => this.destroy());
      socket.on("close", () => this.destroy());
    }
    dialer.on("data", (chunk: Buffer) => this.fromDialer(chunk));
    this.target.on("data", (chunk: Buffer) => this.fromTarget(chunk));
    // A half-close goes on to the other side once what is held for it has gone.
    dialer.on("end", () => this.endAfterHeld(this.target, this.toTarget));
    this.target.on("end", () => this.endAfterHeld(dialer, this.toDialer));
  }

  get heldFrames(): number {
    return this.toTarget.frames + this.toDialer.frames;
  }

  get heldBytes(): number {
    return this.toTarget.bytes + this.toDialer.bytes;
  }

  /** Destroyed because the link is cut. */
  cut(): void {
    if (this.destroyed) return;
    this.context.statistics.cutConnections += 1;
    this.destroy();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.dialer.destroy();
    this.target.destroy();
    const lost = this.toTarget.clear();
    this.toDialer.clear();
    if (this.route === "peer") this.context.statistics.framesDropped += lost;
    this.link?.relays.delete(this);
    this.context.forget(this);
  }

  private fromDialer(chunk: Buffer): void {
    switch (this.route) {
      case "pending":
        return this.readRequest(chunk);
      case "peer":
        return this.readFrames(chunk);
      case "client":
        return this.holdChunk(chunk, this.target, this.toTarget, this.dialerValve);
      case "other":
        return this.write(this.target, chunk, this.dialerValve);
    }
  }

  private fromTarget(chunk: Buffer): void {
    if (this.route === "client") this.holdChunk(chunk, this.dialer, this.toDialer, this.targetValve);
    else this.write(this.dialer, chunk, this.targetValve);
  }

  /** Gathers the upgrade request's head, then routes by its request line. */
  private readRequest(chunk: Buffer): void {
    this.request.push(chunk);
    const head = this.request.length === 1 ? chunk : Buffer.concat(this.request);
    const end = head.indexOf("\r\n\r\n");
    if (end === -1) {
      this.request = [head];
      if (head.length <= MAX_REQUEST_HEAD_BYTES) return;
      this.route = "other";
      this.request = [];
      return this.write(this.target, head, this.dialerValve);
    }
    this.request = [];
    const route = routeOf(head.toString("latin1", 0, end));
    if (route === "client") {
      if (!this.admit("clients")) return;
      this.route = "client";
      return this.holdChunk(head, this.target, this.toTarget, this.dialerValve);
    }
    this.route = route;
    if (route === "other") return this.write(this.target, head, this.dialerValve);
    this.write(this.target, head.subarray(0, end + 4), this.dialerValve);
    if (head.length > end + 4) this.readFrames(head.subarray(end + 4));
  }

  /** Reads the dialer's frames: control frames pass at once, data frames are gathered into messages. */
  private readFrames(chunk: Buffer): void {
    this.reader.push(chunk);
    while (!this.destroyed && this.route === "peer") {
      const frame = this.reader.next();
      if (frame === undefined) return;
      if (frame === "oversized") return this.destroy();
      if (frame.opcode >= 0x8) {
        this.write(this.target, frame.bytes, this.dialerValve);
        continue;
      }
      this.message.push(frame);
      this.messageBytes += frame.bytes.length;
      if (this.messageBytes > this.context.maxMessageBytes) return this.destroy();
      if (!frame.fin) continue;
      const frames = this.message;
      this.message = [];
      this.messageBytes = 0;
      this.onMessage(frames);
    }
  }

  /**
   * The first message names the link (it is the `hello`); every later one is
   * a `msg` (a dialer sends nothing else, see transport-ws's protocol.ts).
   */
  private onMessage(frames: readonly WireFrame[]): void {
    const bytes = frames.length === 1 ? (frames[0] as WireFrame).bytes : Buffer.concat(frames.map((frame) => frame.bytes));
    if (this.link !== undefined) return this.forwardPeerMessage(bytes, this.link);
    const source = helloSender(frames);
    if (source === undefined) {
      // Not a hello: no link to charge faults to, so pass it and the rest through as they come.
      this.route = "other";
      this.write(this.target, bytes, this.dialerValve);
      return this.write(this.target, this.reader.drain(), this.dialerValve);
    }
    if (this.admit(source)) this.write(this.target, bytes, this.dialerValve);
  }

  /** Joins the link from `source`, unless it is cut: then the connection is refused. */
  private admit(source: string): boolean {
    const link = this.context.link(source);
    if (link.faults.cut === true) {
      this.cut();
      return false;
    }
    this.link = link;
    link.relays.add(this);
    return true;
  }

  private forwardPeerMessage(bytes: Buffer, link: Link): void {
    const { statistics, maxHeldFrames, maxHeldBytes } = this.context;
    const fate = link.fate();
    if (fate.drop) {
      statistics.framesDropped += 1;
      return;
    }
    const copies = fate.duplicate ? 2 : 1;
    if (fate.duplicate) statistics.framesDuplicated += 1;
    const out = fate.duplicate ? Buffer.concat([bytes, bytes]) : bytes;
    if (fate.holdMs <= 0 && this.toTarget.empty) {
      this.write(this.target, out, this.dialerValve);
      statistics.framesForwarded += copies;
      return;
    }
    if (link.heldFrames() + copies > maxHeldFrames || link.heldBytes() + out.length > maxHeldBytes) {
      statistics.framesDropped += copies;
      return;
    }
    const overtake = fate.overtake && !this.toTarget.empty;
    if (overtake) statistics.framesReordered += 1;
    this.toTarget.hold(out, copies, performance.now() + fate.holdMs, overtake);
  }

  /**
   * A client chunk, held per the link's hold with its order kept. A queue at
   * the cap pauses the socket it reads from (a byte stream cannot lose a chunk).
   */
  private holdChunk(chunk: Buffer, to: Socket, queue: HoldQueue, from: Valve): void {
    const holdMs = this.link?.holdMs() ?? 0;
    if (holdMs <= 0 && queue.empty) return this.write(to, chunk, from);
    queue.hold(chunk, 1, performance.now() + holdMs, false);
    if (queue.frames >= this.context.maxHeldFrames || queue.bytes >= this.context.maxHeldBytes) from.shut("held");
  }

  private released(item: HeldItem, to: Socket, queue: HoldQueue, from: Valve): void {
    this.write(to, item.bytes, from);
    if (this.route === "peer") this.context.statistics.framesForwarded += item.frames;
    else if (queue.frames < this.context.maxHeldFrames && queue.bytes < this.context.maxHeldBytes) from.open("held");
    if (queue.empty && queue.ending) to.end();
  }

  private endAfterHeld(to: Socket, queue: HoldQueue): void {
    if (queue.empty) to.end();
    else queue.ending = true;
  }

  /** Writes, pausing the socket the bytes came from while `to` is backed up. */
  private write(to: Socket, bytes: Buffer, from: Valve): void {
    if (this.destroyed || !to.writable || bytes.length === 0) return;
    if (!to.write(bytes) && from.shut("backed-up")) to.once("drain", () => from.open("backed-up"));
  }
}

/** Pauses a socket while any reason to stands. */
class Valve {
  private readonly reasons = new Set<string>();

  constructor(private readonly socket: Socket) {}

  /** Returns whether the reason is new. */
  shut(reason: string): boolean {
    if (this.reasons.has(reason)) return false;
    this.reasons.add(reason);
    this.socket.pause();
    return true;
  }

  open(reason: string): void {
    if (this.reasons.delete(reason) && this.reasons.size === 0) this.socket.resume();
  }
}

interface HeldItem {
  readonly bytes: Buffer;
  /** Peer messages in `bytes` (2 for a duplicated one); 1 for a client chunk. */
  readonly frames: number;
  /** On `performance.now()`'s clock. */
  readonly releaseAtMs: number;
}

/**
 * Bytes held back on one connection in one direction, released in queue
 * order once due. Release times never decrease along the queue, so one timer
 * for the head is enough and order is kept, except where a message was put
 * before the tail on purpose (`overtake`).
 */
class HoldQueue {
  frames = 0;
  bytes = 0;
  /** The side these bytes came from has ended: end the other once the queue is empty. */
  ending = false;
  private items: HeldItem[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly release: (item: HeldItem) => void) {}

  get empty(): boolean {
    return this.items.length === 0;
  }

  /** Holds `bytes` until `releaseAtMs`, or (`overtake`) just before the last held item, and with its time. */
  hold(bytes: Buffer, frames: number, releaseAtMs: number, overtake: boolean): void {
    const tail = this.items.at(-1);
    if (overtake && tail !== undefined) {
      this.items.splice(this.items.length - 1, 0, { bytes, frames, releaseAtMs: tail.releaseAtMs });
    } else {
      this.items.push({ bytes, frames, releaseAtMs: Math.max(releaseAtMs, tail?.releaseAtMs ?? releaseAtMs) });
    }
    this.frames += frames;
    this.bytes += bytes.length;
    this.schedule();
  }

  /** Drops everything held; returns how many frames that was. */
  clear(): number {
    clearTimeout(this.timer);
    this.timer = undefined;
    const frames = this.frames;
    this.items = [];
    this.frames = 0;
    this.bytes = 0;
    return frames;
  }

  private schedule(): void {
    const head = this.items[0];
    if (this.timer !== undefined || head === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.releaseDue();
    }, Math.max(0, head.releaseAtMs - performance.now()));
  }

  private releaseDue(): void {
    const now = performance.now();
    let previousMs = -Infinity;
    for (let head = this.items[0]; head !== undefined && head.releaseAtMs <= now; head = this.items[0]) {
      invariant(head.releaseAtMs >= previousMs, "held items are released in time order");
      previousMs = head.releaseAtMs;
      this.items.shift();
      this.frames -= head.frames;
      this.bytes -= head.bytes.length;
      this.release(head);
    }
    this.schedule();
  }
}

/** One WebSocket frame as it came over the wire. */
interface WireFrame {
  readonly fin: boolean;
  readonly opcode: number;
  /** The whole frame, header and (still masked) payload, forwarded as it is. */
  readonly bytes: Buffer;
  readonly payloadOffset: number;
  /** The 4-byte masking key; undefined for an unmasked frame. */
  readonly mask: Buffer | undefined;
}

/**
 * Cuts a byte stream into WebSocket frames (RFC 6455 §5.2), however the TCP
 * chunks fall: 7-, 16- and 64-bit lengths, masked or not. It takes each
 * frame's bytes once it is whole, so a large frame is copied once.
 */
class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrameBytes: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole frame; undefined until more bytes come; `oversized` for a frame over the limit. */
  next(): WireFrame | "oversized" | undefined {
    if (this.buffered < 2) return undefined;
    const head = this.peek(Math.min(14, this.buffered));
    const first = head.readUInt8(0);
    const second = head.readUInt8(1);
    const masked = (second & 0x80) !== 0;
    let length = second & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (head.length < 4) return undefined;
      length = head.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (head.length < 10) return undefined;
      const long = head.readBigUInt64BE(2);
      if (long > BigInt(this.maxFrameBytes)) return "oversized";
      length = Number(long);
      offset = 10;
    }
    if (length > this.maxFrameBytes) return "oversized";
    const payloadOffset = offset + (masked ? 4 : 0);
    const total = payloadOffset + length;
    if (this.buffered < total) return undefined;
    const bytes = this.take(total);
    return { fin: (first & 0x80) !== 0, opcode: first & 0x0f, bytes, payloadOffset, mask: masked ? bytes.subarray(offset, offset + 4) : undefined };
  }

  /** Everything not yet read, for passing through. */
  drain(): Buffer {
    return this.take(this.buffered);
  }

  /** The first `count` bytes (at most 14), merging leading chunks as needed. */
  private peek(count: number): Buffer {
    while ((this.chunks[0]?.length ?? 0) < count && this.chunks.length > 1) {
      const [one, two, ...rest] = this.chunks as [Buffer, Buffer, ...Buffer[]];
      this.chunks = [Buffer.concat([one, two]), ...rest];
    }
    const first = this.chunks[0];
    invariant(first !== undefined && first.length >= count, "peek asks for buffered bytes only");
    return first.subarray(0, count);
  }

  private take(count: number): Buffer {
    invariant(count <= this.buffered, "take asks for buffered bytes only");
    const parts: Buffer[] = [];
    let needed = count;
    while (needed > 0) {
      const chunk = this.chunks[0] as Buffer;
      if (chunk.length <= needed) {
        parts.push(chunk);
        this.chunks.shift();
        needed -= chunk.length;
      } else {
        parts.push(chunk.subarray(0, needed));
        this.chunks[0] = chunk.subarray(needed);
        needed = 0;
      }
    }
    this.buffered -= count;
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, count);
  }
}

/** The dialing replica's id, when this message is a text `hello`. */
function helloSender(frames: readonly WireFrame[]): string | undefined {
  if (frames[0]?.opcode !== 0x1) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(frames.map(unmaskedPayload)).toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const { t, nodeId } = parsed as { t?: unknown; nodeId?: unknown };
  return t === "hello" && typeof nodeId === "string" && nodeId.length > 0 ? nodeId : undefined;
}

/** A copy of the frame's payload with the mask undone (the frame itself stays as it came). */
function unmaskedPayload(frame: WireFrame): Buffer {
  const payload = Buffer.from(frame.bytes.subarray(frame.payloadOffset));
  const { mask } = frame;
  if (mask !== undefined) for (let index = 0; index < payload.length; index += 1) payload.writeUInt8(payload.readUInt8(index) ^ mask.readUInt8(index & 3), index);
  return payload;
}

/** The route a request line asks for: `GET /peer ...`, `GET /client?... ...`, or anything else. */
function routeOf(head: string): "peer" | "client" | "other" {
  const newline = head.indexOf("\r\n");
  const [method, target = ""] = (newline === -1 ? head : head.slice(0, newline)).split(" ");
  if (method !== "GET") return "other";
  const path = target.split("?")[0];
  return path === "/peer" ? "peer" : path === "/client" ? "client" : "other";
}

/** Why `faults` cannot be applied, or undefined when they can. */
function invalidFaults(faults: LinkFaults): string | undefined {
  for (const name of ["drop", "duplicate", "reorder"] as const) {
    const value = faults[name];
    if (value !== undefined && !(value >= 0 && value <= 1)) return `${name} is a probability in [0, 1], got ${value}`;
  }
  for (const name of ["delayMs", "jitterMs"] as const) {
    const value = faults[name];
    if (value !== undefined && !(Number.isFinite(value) && value >= 0)) return `${name} is a non-negative number of milliseconds, got ${value}`;
  }
  return undefined;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** FNV-1a: a source's share of the seed, so each link has its own stream of draws. */
function hash32(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) hash = Math.imul(hash ^ text.charCodeAt(index), 0x01000193) >>> 0;
  return hash;
}
