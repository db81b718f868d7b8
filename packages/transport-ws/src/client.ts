import { randomBytes } from "node:crypto";
import type { Command, CommandBody, MultiOpResult } from "@synod/core";
import WebSocket from "ws";
import { corkForThisTick } from "./cork.js";
import { PROTOCOL_VERSION, type ClientRequestBody, type WireError, clientServerFrame } from "./protocol.js";
import type { TlsClientOptions } from "./tls.js";

export interface SynodClientOptions {
  /** Endpoints of the cluster's replicas (`ws://host:port`, `wss://...`); any one will do to start. */
  readonly urls: readonly string[];
  /** Bearer token, when the cluster requires one. */
  readonly token?: string;
  readonly tls?: TlsClientOptions;
  /** One attempt's time limit (default 5 s); the operation is then retried elsewhere. */
  readonly requestTimeoutMs?: number;
  /** A whole operation's time limit across retries (default 30 s). */
  readonly operationTimeoutMs?: number;
  /** Most sessions (concurrent commands in flight) this client opens (default 8). */
  readonly maxSessions?: number;
}

/** A typed error from the cluster, with its stable code (`NOT_LEADER`, `SESSION_EXPIRED`, ...). */
export class ClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** Machine-readable facts the server attached (a resume revision, a limit...). */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = "ClientError";
  }
}

/** Per-call options. */
export interface CallOptions {
  /**
   * Gives up waiting when aborted: the promise rejects with the signal's
   * reason. A command already sent may still be applied; its session makes
   * it apply at most once.
   */
  readonly signal?: AbortSignal;
}

/** What a stream delivers to. */
export interface StreamHandlers {
  /** One item, in order. */
  onData(data: unknown): void;
  /** The stream ended: cancelled, refused, or its connection lost (`code: "DISCONNECTED"`). Called once. */
  onEnd(error: ClientError): void;
}

/** An open stream. */
export interface Stream {
  /** Which replica serves it. */
  readonly url: string;
  /** Ends it; `onEnd` is not called after. */
  cancel(): void;
}

/**
 * The operation may or may not have been applied: every attempt timed out or
 * lost its connection until the deadline. Reading the state tells which.
 */
export class UnknownOutcomeError extends ClientError {
  constructor(readonly attempts: number) {
    super("UNKNOWN_OUTCOME", `no answer after ${attempts} attempts; the operation may or may not have been applied`);
    this.name = "UnknownOutcomeError";
  }
}

class ConnectionLostError extends Error {}

interface Session {
  id: string;
  nextSeq: number;
  open: boolean;
}

const RETRYABLE = new Set(["EPOCH_CHANGED", "OVERLOADED", "STOPPED", "NOT_LEADER", "LAGGING"]);

/**
 * A client of a Synod cluster over WebSocket. Commands run in sessions
 * (exactly once: a retry of the same session and sequence number returns the
 * first result); the client follows `NOT_LEADER` hints, retries after
 * leadership changes and lost connections, and rotates through the
 * endpoints. Up to `maxSessions` commands are in flight at once.
 */
export class SynodClient {
  private readonly connections = new Map<string, Connection>();
  private target: string;
  private readonly idle: Session[] = [];
  private sessionCount = 0;
  private readonly waitingForSession: ((session: Session) => void)[] = [];
  private closed = false;

  constructor(private readonly options: SynodClientOptions) {
    if (options.urls.length === 0) throw new TypeError("SynodClient needs at least one endpoint URL");
    this.target = options.urls[Math.floor(Math.random() * options.urls.length)] as string;
  }

  /** Applies one operation through the log; resolves with its result. */
  propose<Result = unknown>(op: unknown, options: CallOptions = {}): Promise<Result> {
    return this.command({ type: "op", op }, options.signal) as Promise<Result>;
  }

  /** Applies a MultiOp atomically: `top` if every guard holds, else `fop`. */
  proposeMulti<Result = unknown>(multi: { guard: readonly unknown[]; top: readonly unknown[]; fop: readonly unknown[] }, options: CallOptions = {}): Promise<MultiOpResult<Result>> {
    return this.command({ type: "multi", ...multi }, options.signal) as Promise<MultiOpResult<Result>>;
  }

  /** A linearizable read, served by the leader. */
  read<Result = unknown>(query: unknown, options: CallOptions = {}): Promise<Result> {
    return this.retrying({ kind: "read", query }, options.signal) as Promise<Result>;
  }

  /** A possibly stale read from whichever replica answers. */
  readLocal<Result = unknown>(query: unknown, options: CallOptions = {}): Promise<{ value: Result; appliedThrough: number }> {
    return this.retrying({ kind: "read-local", query }, options.signal) as Promise<{ value: Result; appliedThrough: number }>;
  }

  /**
   * Opens a stream (`watch`) on the current target replica, or on `url`.
   * Streams do not fail over by themselves: `onEnd` says it ended and why,
   * and the caller resumes (from where it got to) with another `stream` call,
   * which goes to the next replica when the last one failed.
   */
  async stream(query: unknown, handlers: StreamHandlers, url?: string): Promise<Stream> {
    if (this.closed) throw new ClientError("CLOSED", "the client is closed");
    const target = url ?? this.target;
    try {
      const connection = this.connection(target);
      return await connection.stream(query, handlers, target);
    } catch (error) {
      if (error instanceof ClientError && error.code === "REJECTED") throw error;
      this.moveAwayFrom(target);
      throw new ClientError("DISCONNECTED", `could not open a stream on ${target}: ${(error as Error).message}`);
    }
  }

  /** Moves the client off `url` (for example after a stream there failed). */
  avoid(url: string): void {
    this.moveAwayFrom(url);
  }

  /** A membership request (see the `members` request), sent to the leader; resolves with the view or the new configuration. */
  members<Result = unknown>(request: Omit<Extract<ClientRequestBody, { kind: "members" }>, "kind">, options: CallOptions = {}): Promise<Result> {
    return this.retrying({ kind: "members", ...request }, options.signal) as Promise<Result>;
  }

  /** The status of one replica (by default, the current target). */
  async status(url?: string): Promise<unknown> {
    const reply = await this.connection(url ?? this.target).request({ kind: "status" }, this.requestTimeout);
    if (!reply.ok) throw new ClientError(reply.error.code, reply.error.message, reply.error.details);
    return reply.result;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const connection of this.connections.values()) connection.close();
    this.connections.clear();
  }

  private get requestTimeout(): number {
    return this.options.requestTimeoutMs ?? 5_000;
  }

  private async command(body: CommandBody, signal: AbortSignal | undefined): Promise<unknown> {
    signal?.throwIfAborted();
    const session = await this.acquireSession(signal);
    try {
      const command: Command = { session: session.id, seq: session.nextSeq++, body };
      const outcome = await this.retrying({ kind: "command", command }, signal);
      return outcome;
    } catch (error) {
      if (error instanceof ClientError && error.code === "SESSION_EXPIRED") session.open = false;
      throw error;
    } finally {
      this.releaseSession(session);
    }
  }

  private async acquireSession(signal: AbortSignal | undefined): Promise<Session> {
    let session = this.idle.pop();
    if (session === undefined && this.sessionCount < (this.options.maxSessions ?? 8)) {
      this.sessionCount += 1;
      session = { id: `${randomBytes(16).toString("hex")}`, nextSeq: 0, open: false };
    }
    session ??= await this.waitForSession(signal);
    if (!session.open) {
      try {
        await this.retrying({ kind: "command", command: { session: session.id, seq: session.nextSeq++, body: { type: "open-session" } } }, signal);
      } catch (error) {
        this.releaseSession(session);
        throw error;
      }
      session.open = true;
    }
    return session;
  }

  /** Waits for a session another call releases; an abort leaves the queue. */
  private waitForSession(signal: AbortSignal | undefined): Promise<Session> {
    return new Promise<Session>((resolve, reject) => {
      const waiter = (session: Session) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(session);
      };
      const onAbort = () => {
        const index = this.waitingForSession.indexOf(waiter);
        if (index >= 0) this.waitingForSession.splice(index, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waitingForSession.push(waiter);
    });
  }

  private releaseSession(session: Session): void {
    if (!session.open) {
      // Expired or never opened: start afresh under a new id next time.
      session.id = randomBytes(16).toString("hex");
      session.nextSeq = 0;
    }
    const waiter = this.waitingForSession.shift();
    if (waiter !== undefined) waiter(session);
    else this.idle.push(session);
  }

  /** Sends a request, following leader hints and retrying the same request until it is answered or the deadline passes. */
  private async retrying(body: ClientRequestBody, signal?: AbortSignal): Promise<unknown> {
    const deadline = Date.now() + (this.options.operationTimeoutMs ?? 30_000);
    let attempts = 0;
    let backoffMs = 10;
    for (;;) {
      if (this.closed) throw new ClientError("CLOSED", "the client is closed");
      signal?.throwIfAborted();
      if (Date.now() > deadline) throw new UnknownOutcomeError(attempts);
      attempts += 1;
      const target = this.target;
      let reply: Awaited<ReturnType<Connection["request"]>>;
      try {
        reply = await abortable(this.connection(target).request(body, this.requestTimeout), signal);
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        // Refused (no or wrong token): retrying cannot help; say so at once.
        if (error instanceof ClientError && error.code === "REJECTED") throw error;
        // Lost connection or timeout: the same request goes to another replica.
        this.moveAwayFrom(target);
        await sleep(Math.min(backoffMs, 500), signal);
        backoffMs *= 2;
        continue;
      }
      if (reply.ok) return reply.result;
      const error: WireError = reply.error;
      if (!RETRYABLE.has(error.code)) throw new ClientError(error.code, error.message, error.details);
      if (error.code === "NOT_LEADER" && error.leaderUrl !== undefined && error.leaderUrl !== target) {
        this.target = error.leaderUrl;
        continue;
      }
      if (error.code === "NOT_LEADER" || error.code === "LAGGING") this.moveAwayFrom(target);
      await sleep(Math.min(backoffMs, 500), signal);
      backoffMs *= 2;
    }
  }

  /**
   * Moves on to the next endpoint after `failed`, unless another operation
   * already moved the shared target elsewhere: concurrent operations that
   * all fail on one replica must not rotate together, in lockstep, back onto it.
   */
  private moveAwayFrom(failed: string): void {
    if (this.target !== failed) return;
    const urls = this.options.urls;
    const index = urls.indexOf(failed);
    this.target = urls[(index + 1) % urls.length] as string;
  }

  private connection(url: string): Connection {
    let connection = this.connections.get(url);
    if (connection === undefined || connection.dead) {
      connection = new Connection(url, this.options);
      this.connections.set(url, connection);
    }
    return connection;
  }
}

/** One WebSocket to one replica, multiplexing requests by id. */
class Connection {
  dead = false;
  private readonly socket: WebSocket;
  private readonly opened: Promise<void>;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(reply: { ok: true; result: unknown } | { ok: false; error: WireError }): void; reject(error: Error): void }>();
  private readonly streams = new Map<number, StreamHandlers>();

  constructor(url: string, options: SynodClientOptions) {
    const tls = options.tls;
    this.socket = new WebSocket(`${url.replace(/\/+$/, "")}/client`, {
      handshakeTimeout: options.requestTimeoutMs ?? 5_000,
      perMessageDeflate: false,
      ...(options.token === undefined ? {} : { headers: { authorization: `Bearer ${options.token}` } }),
      ...(tls === undefined ? {} : { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized ?? true }),
    });
    this.opened = new Promise((resolve, reject) => {
      this.socket.once("open", () => resolve());
      this.socket.once("error", reject);
      this.socket.once("unexpected-response", (_request, response) => {
        this.dead = true;
        reject(
          new ClientError(
            "REJECTED",
            response.statusCode === 401
              ? "the server refused the connection (HTTP 401): this cluster requires a client token; pass `token`"
              : `the server refused the connection (HTTP ${response.statusCode})`,
          ),
        );
        this.socket.terminate();
      });
    });
    this.opened.catch(() => undefined);
    this.socket.on("message", (data) => this.onMessage(data.toString()));
    this.socket.on("close", () => this.fail(new ConnectionLostError("connection closed")));
    this.socket.on("error", () => this.fail(new ConnectionLostError("connection error")));
  }

  async request(body: ClientRequestBody, timeoutMs: number): Promise<{ ok: true; result: unknown } | { ok: false; error: WireError }> {
    await this.opened;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ConnectionLostError("request timed out"));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      corkForThisTick(this.socket);
      this.socket.send(JSON.stringify({ v: PROTOCOL_VERSION, t: "request", id, body }));
    });
  }

  async stream(query: unknown, handlers: StreamHandlers, url: string): Promise<Stream> {
    await this.opened;
    if (this.dead) throw new ConnectionLostError("connection closed");
    const id = this.nextId++;
    this.streams.set(id, handlers);
    this.socket.send(JSON.stringify({ v: PROTOCOL_VERSION, t: "request", id, body: { kind: "watch", query } }));
    return {
      url,
      cancel: () => {
        if (!this.streams.delete(id) || this.dead) return;
        const cancel = this.nextId++;
        this.socket.send(JSON.stringify({ v: PROTOCOL_VERSION, t: "request", id: cancel, body: { kind: "cancel", stream: id } }));
      },
    };
  }

  close(): void {
    this.dead = true;
    this.socket.terminate();
  }

  private onMessage(text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return this.fail(new ConnectionLostError("the server sent a frame that is not JSON"));
    }
    const frame = clientServerFrame.safeParse(parsed);
    if (!frame.success) return this.fail(new ConnectionLostError("the server sent an invalid frame"));
    if (frame.data.t === "event") {
      this.streams.get(frame.data.id)?.onData(frame.data.data);
      return;
    }
    const stream = this.streams.get(frame.data.id);
    if (stream !== undefined) {
      this.streams.delete(frame.data.id);
      const error = frame.data.error ?? { code: "ENDED", message: "the server ended the stream" };
      stream.onEnd(new ClientError(error.code, error.message, error.details));
      return;
    }
    const waiter = this.pending.get(frame.data.id);
    if (waiter === undefined) return;
    this.pending.delete(frame.data.id);
    if (frame.data.ok) waiter.resolve({ ok: true, result: frame.data.result });
    else waiter.resolve({ ok: false, error: frame.data.error ?? { code: "INTERNAL", message: "error without details" } });
  }

  private fail(error: Error): void {
    this.dead = true;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const stream of streams) stream.onEnd(new ClientError("DISCONNECTED", `the stream's connection was lost: ${error.message}`));
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate();
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return abortable(new Promise((resolve) => setTimeout(resolve, ms)), signal);
}

/** `promise`, or a rejection with the signal's reason as soon as it is aborted. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
