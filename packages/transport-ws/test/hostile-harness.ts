/**
 * Shared helpers for the hostile-input tests (security.test.ts, fuzz.test.ts):
 * a raw WebSocket that records every frame and how it closed, an in-process
 * cluster over real sockets, a robust state machine, and cleanup tracking.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { MemoryStorage, type Message, type StateMachine, SynodNode } from "@synod/core";
import WebSocket, { type ClientOptions } from "ws";
import { type Logger, SynodServer, type TlsClientOptions, type TlsServerOptions, WsTransport, nodeClientHandler, silentLogger } from "../src/index.js";

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. */
export async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Closers run in reverse order: the latest resource first. */
export class Resources {
  private readonly closers: (() => unknown)[] = [];
  add(closer: () => unknown): void {
    this.closers.push(closer);
  }
  async closeAll(): Promise<void> {
    for (const closer of this.closers.splice(0).reverse()) {
      try {
        await closer();
      } catch {
        // Best effort: one failing closer must not leak the others.
      }
    }
  }
}

export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
}

/**
 * A raw `ws` client that records every frame it receives, the HTTP status of
 * a refused upgrade, and how the connection closed. It never throws from an
 * event: errors are recorded.
 */
export class RawSocket {
  readonly ws: WebSocket;
  readonly frames: string[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<CloseInfo>;
  closeInfo: CloseInfo | undefined;
  httpStatus: number | undefined;
  error: Error | undefined;
  private cursor = 0;

  constructor(url: string, options: ClientOptions = {}) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 5_000, ...options });
    this.ws.on("message", (data) => this.frames.push(data.toString()));
    this.ws.on("error", (error) => {
      this.error ??= error;
    });
    this.opened = new Promise<void>((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("error", reject);
      this.ws.once("unexpected-response", (_request, response) => {
        this.httpStatus = response.statusCode;
        reject(new Error(`HTTP ${response.statusCode}`));
        this.ws.terminate();
      });
    });
    this.opened.catch(() => undefined);
    this.closed = new Promise((resolve) =>
      this.ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
      }),
    );
  }

  /** The next frame not yet read, parsed as JSON; fails if the connection closes first. */
  async next(timeoutMs = 3_000): Promise<Record<string, unknown>> {
    await until(() => this.frames.length > this.cursor || this.closeInfo !== undefined, "a frame", timeoutMs);
    const text = this.frames[this.cursor];
    if (text === undefined) throw new Error(`closed (${this.closeInfo?.code} ${this.closeInfo?.reason}) before a frame arrived`);
    this.cursor += 1;
    return JSON.parse(text) as Record<string, unknown>;
  }

  /** Sends a value as a JSON text frame (a string is sent verbatim); returns the exact text sent. */
  send(frame: unknown): string {
    const text = typeof frame === "string" ? frame : JSON.stringify(frame);
    this.ws.send(text);
    return text;
  }

  /** Resolves with the close, or fails after `timeoutMs`. */
  async closedWithin(timeoutMs = 3_000): Promise<CloseInfo> {
    await until(() => this.closeInfo !== undefined, "the connection to close", timeoutMs);
    return this.closeInfo as CloseInfo;
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** A valid heartbeat from `from` to `to`; `round` tells messages apart. */
export function heartbeat(from: string, to: string, round = 1): Message {
  return { type: "heartbeat", from, to, ballot: { round, node: from }, firstUnchosen: 0, round, logTime: 0 };
}

/**
 * A register that tolerates any input (as a state machine facing the network
 * must): `{ set: string }` replaces the value and returns the previous one;
 * anything else changes nothing and returns null. Every query returns the value.
 */
export class Register implements StateMachine<unknown, unknown, string | null, unknown, string> {
  value = "";
  apply(op: unknown): string | null {
    if (typeof op !== "object" || op === null || typeof (op as { set?: unknown }).set !== "string") return null;
    const previous = this.value;
    this.value = (op as { set: string }).set;
    return previous;
  }
  test(expected: unknown): boolean {
    return expected === this.value;
  }
  query(): string {
    return this.value;
  }
  snapshot(): () => Uint8Array {
    const value = this.value;
    return () => new TextEncoder().encode(value);
  }
  restore(data: Uint8Array): void {
    this.value = new TextDecoder().decode(data);
  }
}

export interface Member {
  readonly id: string;
  readonly node: SynodNode;
  readonly server: SynodServer;
  readonly transport: WsTransport;
  readonly url: string;
  readonly fatal: Error[];
}

export interface Cluster {
  readonly members: Member[];
  readonly urls: string[];
  member(id: string): Member;
  close(): Promise<void>;
}

export interface ClusterOptions {
  readonly ids?: readonly string[];
  readonly clusterId?: string;
  readonly secret: string | undefined;
  /** Listener TLS for every member (switches the URLs to wss://). */
  readonly serverTls?: TlsServerOptions;
  /** What every member dials its peers with. */
  readonly dialTls?: TlsClientOptions;
  readonly maxPayloadBytes?: number;
  readonly tickMs?: number;
  readonly logger?: Logger;
}

/** An in-process cluster over real sockets on 127.0.0.1 (ports picked by the OS), every replica also serving clients. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const ids = options.ids ?? ["a", "b", "c"];
  const clusterId = options.clusterId ?? "hostile";
  const logger = options.logger ?? silentLogger;
  const scheme = options.serverTls === undefined ? "ws" : "wss";
  const transports = new Map<string, WsTransport>();
  const nodes = new Map<string, SynodNode>();
  const servers = new Map<string, SynodServer>();
  const urls = new Map<string, string>();
  const members: Member[] = [];
  const cluster: Cluster = {
    members,
    urls: [],
    member(id) {
      const found = members.find((member) => member.id === id);
      if (found === undefined) throw new Error(`no member ${id}`);
      return found;
    },
    async close() {
      for (const member of members) await member.node.stop();
      for (const server of servers.values()) await server.close();
    },
  };
  try {
    for (const id of ids) {
      const server = new SynodServer({
        self: id,
        clusterId,
        host: "127.0.0.1",
        port: 0,
        peers: ids,
        secret: options.secret,
        logger,
        ...(options.serverTls === undefined ? {} : { tls: options.serverTls }),
        ...(options.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: options.maxPayloadBytes }),
        onPeerMessage: (message) => transports.get(id)?.deliver(message),
        clients: {
          handle: (body) => nodeClientHandler(nodes.get(id) as SynodNode, (peer) => urls.get(peer)).handle(body),
        },
      });
      servers.set(id, server);
      urls.set(id, `${scheme}://127.0.0.1:${await server.listen()}`);
    }
    for (const id of ids) {
      const transport = new WsTransport({
        self: id,
        clusterId,
        peers: ids.map((peer) => ({ id: peer, url: urls.get(peer) as string })),
        secret: options.secret,
        logger,
        ...(options.dialTls === undefined ? {} : { tls: options.dialTls }),
        link: { reconnectMinMs: 10, reconnectMaxMs: 200 },
      });
      transports.set(id, transport);
      const node = new SynodNode({ id, voters: ids, storage: new MemoryStorage(), transport, stateMachine: new Register(), tickMs: options.tickMs ?? 10 });
      const fatal: Error[] = [];
      node.on("fatal", (error) => fatal.push(error));
      nodes.set(id, node as unknown as SynodNode);
      members.push({ id, node: node as unknown as SynodNode, server: servers.get(id) as SynodServer, transport, url: urls.get(id) as string, fatal });
      await node.start();
    }
  } catch (error) {
    await cluster.close();
    throw error;
  }
  cluster.urls.push(...ids.map((id) => urls.get(id) as string));
  return cluster;
}

/** A child process running `hostile-process.ts` (see there), with its output collected. */
export interface HostileProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves with the exit code (or the signal) when the process ends. */
  readonly exited: Promise<number | string>;
  /** The first stdout line that starts with `prefix`, without it. */
  line(prefix: string, timeoutMs?: number): Promise<string>;
  /** Ends the process (stdin closed, then SIGKILL by pid if it lingers). */
  stop(): Promise<void>;
}

export function spawnHostile(args: readonly string[]): HostileProcess {
  const tsx = createRequire(import.meta.url).resolve("tsx/cli");
  const script = fileURLToPath(new URL("./hostile-process.ts", import.meta.url));
  const child = spawn(process.execPath, [tsx, "--conditions=@synod/source", script, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | string>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")));
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    async line(prefix, timeoutMs = 20_000) {
      const find = () => stdout.split("\n").find((line) => line.startsWith(prefix));
      await until(() => find() !== undefined || child.exitCode !== null, `"${prefix}" from the child process`, timeoutMs);
      const found = find();
      if (found === undefined) throw new Error(`the child process exited (${child.exitCode}) before printing "${prefix}": ${stderr}`);
      return found.slice(prefix.length).trim();
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin?.end();
      const ended = await Promise.race([exited.then(() => true), sleep(2_000).then(() => false)]);
      if (!ended && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    },
  };
}
