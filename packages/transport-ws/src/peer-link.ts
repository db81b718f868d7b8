import type { Message, NodeId } from "@synod/core";
import WebSocket from "ws";
import { helloMac, newNonce, safeEqual, welcomeMac } from "./auth.js";
import { corkForThisTick } from "./cork.js";
import { closeReason } from "./limits.js";
import type { Logger } from "./logger.js";
import { PROTOCOL_VERSION, challengeFrame, welcomeFrame } from "./protocol.js";
import type { TlsClientOptions } from "./tls.js";

export interface PeerLinkOptions {
  readonly self: NodeId;
  readonly peer: NodeId;
  /** The peer's endpoint, e.g. `ws://127.0.0.1:7001` or `wss://...`; `/peer` is appended. */
  readonly url: string;
  readonly clusterId: string;
  /** The cluster secret for the HMAC handshake; undefined only in a plaintext loopback dev cluster. */
  readonly secret: string | undefined;
  readonly tls?: TlsClientOptions;
  /** Most messages kept while disconnected or while the socket is backed up; the oldest are dropped. */
  readonly maxQueuedMessages?: number;
  /** Stop writing to the socket while more than this is buffered in it. */
  readonly maxBufferedBytes?: number;
  readonly maxPayloadBytes?: number;
  readonly pingIntervalMs?: number;
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  readonly logger: Logger;
}

export interface PeerLinkStatistics {
  sent: number;
  dropped: number;
  connects: number;
  failedHandshakes: number;
}

type State = "idle" | "connecting" | "handshaking" | "ready" | "closed";

/**
 * The outgoing connection from this replica to one peer. It authenticates
 * (the peer's fresh nonce, HMAC with the cluster secret, and the peer's proof
 * in return), reconnects with exponential backoff and full jitter, keeps a
 * bounded queue (Paxos tolerates loss: when full, the oldest message goes),
 * stops writing while the socket's buffer is over its bound, and pings to
 * find dead sockets (separately from Paxos heartbeats).
 */
export class PeerLink {
  readonly statistics: PeerLinkStatistics = { sent: 0, dropped: 0, connects: 0, failedHandshakes: 0 };
  private state: State = "idle";
  private socket: WebSocket | undefined;
  private queue: string[] = [];
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private awaitingPong = false;
  private readonly maxQueued: number;
  private readonly maxBuffered: number;

  /** The endpoint this link dials. */
  get url(): string {
    return this.options.url;
  }

  constructor(private readonly options: PeerLinkOptions) {
    this.maxQueued = options.maxQueuedMessages ?? 4096;
    this.maxBuffered = options.maxBufferedBytes ?? 8 * 1024 * 1024;
  }

  get connected(): boolean {
    return this.state === "ready";
  }

  /** Sends (or queues) one message; never throws. */
  send(message: Message): void {
    if (this.state === "closed") return;
    let frame: string;
    try {
      frame = JSON.stringify({ v: PROTOCOL_VERSION, t: "msg", m: message });
    } catch (error) {
      // Not serializable (a cycle, or nesting too deep for the stack): drop it, as the network may.
      this.statistics.dropped += 1;
      this.options.logger.error("message could not be encoded; dropped", { peer: this.options.peer, error: (error as Error).message });
      return;
    }
    if (this.state === "ready" && this.queue.length === 0 && this.writable()) {
      this.write(frame);
      return;
    }
    this.queue.push(frame);
    if (this.queue.length > this.maxQueued) {
      this.queue.shift();
      this.statistics.dropped += 1;
    }
    if (this.state === "idle") this.connect();
    else if (this.state === "ready") this.flush();
  }

  close(): void {
    this.state = "closed";
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pingTimer);
    this.socket?.terminate();
    this.socket = undefined;
    this.queue = [];
  }

  private writable(): boolean {
    return this.socket !== undefined && this.socket.readyState === WebSocket.OPEN && this.socket.bufferedAmount < this.maxBuffered;
  }

  private write(frame: string): void {
    if (this.socket === undefined) return;
    corkForThisTick(this.socket);
    // The callback fires once the frame left the buffer: keep flushing the queue then.
    this.socket.send(frame, (error) => {
      if (error === undefined || error === null) this.flush();
    });
    this.statistics.sent += 1;
  }

  private flush(): void {
    while (this.state === "ready" && this.queue.length > 0 && this.writable()) this.write(this.queue.shift() as string);
  }

  private connect(): void {
    if (this.state === "closed") return;
    this.state = "connecting";
    const { tls } = this.options;
    const socket = new WebSocket(`${this.options.url.replace(/\/+$/, "")}/peer`, {
      maxPayload: this.options.maxPayloadBytes ?? 16 * 1024 * 1024,
      handshakeTimeout: 5_000,
      perMessageDeflate: false,
      ...(tls === undefined ? {} : { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized ?? true }),
    });
    this.socket = socket;
    const myNonce = newNonce();
    socket.on("message", (data) => this.onFrame(socket, data.toString(), myNonce));
    socket.on("pong", () => {
      this.awaitingPong = false;
    });
    socket.on("close", () => this.onClosed(socket));
    socket.on("error", (error) => {
      const code = (error as NodeJS.ErrnoException).code ?? "";
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code)) {
        // The peer's certificate was refused: an authentication failure, not a network blip.
        this.statistics.failedHandshakes += 1;
        this.options.logger.warn("peer certificate refused", { peer: this.options.peer, code, error: error.message });
        return;
      }
      this.options.logger.debug("peer link error", { peer: this.options.peer, error: error.message });
    });
  }

  private onFrame(socket: WebSocket, text: string, myNonce: string): void {
    if (socket !== this.socket) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return this.fail(socket, "the peer sent a frame that is not JSON");
    }
    const { self, peer, secret, clusterId } = this.options;
    if (this.state === "connecting") {
      const challenge = challengeFrame.safeParse(parsed);
      if (!challenge.success) return this.fail(socket, "expected a challenge");
      if (challenge.data.nodeId !== peer) return this.fail(socket, `reached ${challenge.data.nodeId}, expected ${peer}`);
      if (challenge.data.clusterId !== clusterId) return this.fail(socket, `peer is in cluster ${challenge.data.clusterId}, not ${clusterId}`);
      const mac = secret === undefined ? "0".repeat(64) : helloMac(secret, clusterId, challenge.data.nonce, self, peer);
      socket.send(JSON.stringify({ v: PROTOCOL_VERSION, t: "hello", nodeId: self, nonce: myNonce, mac }));
      this.state = "handshaking";
      return;
    }
    if (this.state === "handshaking") {
      const welcome = welcomeFrame.safeParse(parsed);
      if (!welcome.success) return this.fail(socket, "expected a welcome");
      if (secret !== undefined && !safeEqual(welcome.data.mac, welcomeMac(secret, clusterId, myNonce, self, peer))) {
        return this.fail(socket, "the peer could not prove it knows the cluster secret");
      }
      this.state = "ready";
      this.attempt = 0;
      this.statistics.connects += 1;
      this.startPings(socket);
      this.options.logger.info("peer link up", { peer });
      this.flush();
    }
    // Listeners send nothing else on a dialled link.
  }

  private fail(socket: WebSocket, reason: string): void {
    this.statistics.failedHandshakes += 1;
    this.options.logger.warn("peer handshake failed", { peer: this.options.peer, reason });
    socket.close(1008, closeReason(reason));
  }

  private startPings(socket: WebSocket): void {
    clearInterval(this.pingTimer);
    this.awaitingPong = false;
    this.pingTimer = setInterval(() => {
      if (this.awaitingPong) {
        this.options.logger.warn("peer link dead (no pong)", { peer: this.options.peer });
        socket.terminate();
        return;
      }
      this.awaitingPong = true;
      socket.ping();
    }, this.options.pingIntervalMs ?? 5_000);
    this.pingTimer.unref();
  }

  private onClosed(socket: WebSocket): void {
    if (socket !== this.socket) return;
    clearInterval(this.pingTimer);
    this.socket = undefined;
    if (this.state === "closed") return;
    if (this.state === "ready") this.options.logger.info("peer link down", { peer: this.options.peer });
    this.state = "idle";
    // Exponential backoff with full jitter, so replicas that lost a peer together do not reconnect in lockstep.
    const min = this.options.reconnectMinMs ?? 50;
    const max = this.options.reconnectMaxMs ?? 2_000;
    const delay = Math.random() * Math.min(max, min * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 20);
    this.reconnectTimer = setTimeout(() => {
      if (this.state === "idle") this.connect();
    }, delay);
    this.reconnectTimer.unref();
  }
}
