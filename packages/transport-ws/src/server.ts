import { type IncomingMessage, type Server, createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import type { Message, NodeId } from "@synod/core";
import { type WebSocket, WebSocketServer } from "ws";
import { z } from "zod";
import { helloMac, newNonce, safeEqual, welcomeMac } from "./auth.js";
import { corkForThisTick } from "./cork.js";
import { MAX_NESTING_DEPTH, closeReason, nestedDeeperThan } from "./limits.js";
import type { Logger } from "./logger.js";
import { type ClientHandler, type ClientReply, PROTOCOL_VERSION, type StreamSink, clientRequestFrame, helloFrame, peerMessageFrame } from "./protocol.js";
import type { TlsServerOptions } from "./tls.js";

export interface SynodServerOptions {
  readonly self: NodeId;
  readonly clusterId: string;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Peers allowed to connect. */
  readonly peers: readonly NodeId[];
  /** The cluster secret; undefined only for a plaintext dev cluster on loopback. */
  readonly secret: string | undefined;
  /** Bearer tokens clients must present; undefined lets any client in. */
  readonly clientTokens?: readonly string[];
  readonly tls?: TlsServerOptions;
  /** Largest frame accepted; a larger one closes the connection (1009). */
  readonly maxPayloadBytes?: number;
  /** Most streams (watches) one client connection may hold open (default 1 000). */
  readonly maxStreamsPerConnection?: number;
  readonly handshakeTimeoutMs?: number;
  readonly logger: Logger;
  /** Where authenticated peer messages go. */
  readonly onPeerMessage: (message: Message) => void;
  /** Answers client requests; without it `/client` is refused. */
  readonly clients?: ClientHandler;
  /**
   * Plain HTTP GET routes on the same port (such as `/metrics`). They need
   * a client token when tokens are configured.
   */
  readonly httpRoutes?: Readonly<Record<string, () => { readonly contentType: string; readonly body: string }>>;
}

export interface ServerStatistics {
  peersAccepted: number;
  peersRejected: number;
  clientsAccepted: number;
  clientsRejected: number;
  badFrames: number;
  /** Connections refused by TLS (no certificate, an untrusted one, plaintext on a TLS port). */
  tlsRejected: number;
  peerMessages: number;
  clientRequests: number;
  /** Streams (watches) open now. */
  openStreams: number;
}

/**
 * One listening port for both peer links (`/peer`) and clients (`/client`).
 * Peers prove they know the cluster secret against a fresh nonce (so a
 * recorded handshake cannot be replayed) and must be members; clients
 * present a bearer token when tokens are configured. Every frame is validated
 * against the versioned schemas; a bad one closes that connection with the
 * reason, counted and logged, and never takes the process down.
 */
export class SynodServer {
  readonly statistics: ServerStatistics = {
    peersAccepted: 0,
    peersRejected: 0,
    clientsAccepted: 0,
    clientsRejected: 0,
    badFrames: 0,
    tlsRejected: 0,
    peerMessages: 0,
    clientRequests: 0,
    openStreams: 0,
  };
  private readonly http: Server;
  private readonly sockets: WebSocketServer;
  private peers: ReadonlySet<NodeId>;

  constructor(private readonly options: SynodServerOptions) {
    this.peers = new Set(options.peers.filter((peer) => peer !== options.self));
    const reject = (request: IncomingMessage, response: import("node:http").ServerResponse) => {
      const route = options.httpRoutes?.[(request.url ?? "").split("?")[0] ?? ""];
      if (route !== undefined && request.method === "GET") {
        if (!this.clientAuthorized(request)) {
          response.writeHead(401, { "content-type": "text/plain" }).end("a client token is required (Authorization: Bearer ...)\n");
          return;
        }
        try {
          const { contentType, body } = route();
          response.writeHead(200, { "content-type": contentType }).end(body);
        } catch (error) {
          response.writeHead(500, { "content-type": "text/plain" }).end(`${(error as Error).message}\n`);
        }
        return;
      }
      response.writeHead(426, { "content-type": "text/plain" }).end("Synod speaks WebSocket on /peer and /client\n");
    };
    this.http =
      options.tls === undefined
        ? createHttpServer(reject)
        : createHttpsServer(
            {
              cert: options.tls.cert,
              key: options.tls.key,
              ...(options.tls.ca === undefined ? {} : { ca: options.tls.ca }),
              requestCert: options.tls.requestClientCertificate ?? options.tls.ca !== undefined,
              rejectUnauthorized: options.tls.requestClientCertificate ?? options.tls.ca !== undefined,
            },
            reject,
          );
    this.sockets = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes ?? 16 * 1024 * 1024, perMessageDeflate: false });
    this.http.on("upgrade", (request, socket, head) => this.onUpgrade(request, socket, head));
    this.http.on("clientError", (_error, socket) => socket.destroy());
    this.http.on("tlsClientError", (error) => {
      this.statistics.tlsRejected += 1;
      options.logger.warn("TLS connection refused", { reason: error.message.slice(0, 300) });
    });
  }

  /** Starts listening; resolves with the bound port. */
  /** Accepts peer connections from exactly these replicas from now on (a configuration change added or removed members). */
  setPeers(peers: readonly NodeId[]): void {
    this.peers = new Set(peers.filter((peer) => peer !== this.options.self));
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(this.options.port, this.options.host, () => {
        this.http.off("error", reject);
        const address = this.http.address();
        resolve(typeof address === "object" && address !== null ? address.port : this.options.port);
      });
    });
  }

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    for (const client of this.sockets.clients) client.terminate();
    return new Promise((resolve) => {
      this.sockets.close(() => this.http.close(() => resolve()));
      this.http.closeAllConnections?.();
    });
  }

  private onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    const path = (request.url ?? "").split("?")[0];
    if (path === "/peer") {
      this.sockets.handleUpgrade(request, socket, head, (ws) => this.acceptPeer(ws));
    } else if (path === "/client" && this.options.clients !== undefined) {
      if (!this.clientAuthorized(request)) {
        this.statistics.clientsRejected += 1;
        this.options.logger.warn("client rejected: missing or wrong token", { remote: request.socket.remoteAddress });
        socket.end("HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
      }
      this.sockets.handleUpgrade(request, socket, head, (ws) => this.acceptClient(ws));
    } else {
      socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    }
  }

  private clientAuthorized(request: IncomingMessage): boolean {
    const tokens = this.options.clientTokens;
    if (tokens === undefined || tokens.length === 0) return true;
    const header = request.headers.authorization ?? "";
    const presented = header.startsWith("Bearer ") ? header.slice(7) : "";
    return tokens.some((token) => safeEqual(token, presented));
  }

  private acceptPeer(ws: WebSocket): void {
    const { self, clusterId, secret, logger } = this.options;
    const nonce = newNonce();
    let peer: NodeId | undefined;
    const timer = setTimeout(() => this.rejectPeer(ws, "handshake timed out"), this.options.handshakeTimeoutMs ?? 5_000);
    timer.unref();
    ws.send(JSON.stringify({ v: PROTOCOL_VERSION, t: "challenge", nonce, nodeId: self, clusterId }));
    ws.on("message", (data, isBinary) => {
      // Once we decided to close, nothing more from this connection is looked at.
      if (ws.readyState !== ws.OPEN) return;
      if (isBinary) return this.badFrame(ws, "binary frames are not part of the protocol");
      const parsed = parseJson(data.toString());
      if (parsed === undefined) return this.badFrame(ws, "frame is not JSON");
      if (nestedDeeperThan(parsed, MAX_NESTING_DEPTH)) return this.badFrame(ws, `frame nests deeper than ${MAX_NESTING_DEPTH}`);
      if (peer === undefined) {
        const hello = helloFrame.safeParse(parsed);
        if (!hello.success) return this.rejectPeer(ws, "expected a hello");
        if (!this.peers.has(hello.data.nodeId)) return this.rejectPeer(ws, `${hello.data.nodeId} is not a member`);
        if (secret !== undefined && !safeEqual(hello.data.mac, helloMac(secret, clusterId, nonce, hello.data.nodeId, self))) {
          return this.rejectPeer(ws, `${hello.data.nodeId} failed authentication`);
        }
        clearTimeout(timer);
        peer = hello.data.nodeId;
        const mac = secret === undefined ? "0".repeat(64) : welcomeMac(secret, clusterId, hello.data.nonce, peer, self);
        ws.send(JSON.stringify({ v: PROTOCOL_VERSION, t: "welcome", mac }));
        this.statistics.peersAccepted += 1;
        logger.info("peer accepted", { peer });
        return;
      }
      const frame = peerMessageFrame.safeParse(parsed);
      if (!frame.success) return this.badFrame(ws, `invalid peer frame: ${z.prettifyError(frame.error)}`);
      const message = frame.data.m as Message;
      if (message.from !== peer || message.to !== self) return this.badFrame(ws, `message from ${message.from} to ${message.to} on the link from ${peer}`);
      this.statistics.peerMessages += 1;
      try {
        this.options.onPeerMessage(message);
      } catch (error) {
        logger.error("peer message handler failed", { error: (error as Error).message });
      }
    });
    ws.on("error", (error) => this.socketError(ws, error));
    ws.on("close", () => clearTimeout(timer));
  }

  private rejectPeer(ws: WebSocket, reason: string): void {
    this.statistics.peersRejected += 1;
    this.options.logger.warn("peer rejected", { reason });
    ws.close(1008, closeReason(reason));
  }

  private acceptClient(ws: WebSocket): void {
    this.statistics.clientsAccepted += 1;
    const handler = this.options.clients as ClientHandler;
    const streams = new Map<number, (final: ClientReply | undefined) => void>();
    ws.on("message", (data, isBinary) => {
      if (ws.readyState !== ws.OPEN) return;
      if (isBinary) return this.badFrame(ws, "binary frames are not part of the protocol");
      const parsed = parseJson(data.toString());
      if (parsed === undefined) return this.badFrame(ws, "frame is not JSON");
      if (nestedDeeperThan(parsed, MAX_NESTING_DEPTH)) {
        const id = (parsed as { id?: unknown }).id;
        if (typeof id === "number" && Number.isSafeInteger(id) && id >= 0) {
          this.statistics.badFrames += 1;
          return reply(ws, id, { ok: false, error: { code: "INVALID_INPUT", message: `request nests deeper than ${MAX_NESTING_DEPTH}` } });
        }
        return this.badFrame(ws, `frame nests deeper than ${MAX_NESTING_DEPTH}`);
      }
      const frame = clientRequestFrame.safeParse(parsed);
      if (!frame.success) {
        const id = (parsed as { id?: unknown } | null)?.id;
        // A request we can answer gets a typed error; anything else closes the connection.
        if (typeof id === "number" && Number.isSafeInteger(id) && id >= 0) {
          this.statistics.badFrames += 1;
          return reply(ws, id, { ok: false, error: { code: "INVALID_INPUT", message: `invalid request: ${z.prettifyError(frame.error)}`.slice(0, 4000) } });
        }
        return this.badFrame(ws, "invalid request frame");
      }
      this.statistics.clientRequests += 1;
      const { id, body } = frame.data;
      if (body.kind === "watch") return this.openStream(ws, streams, id, body.query);
      if (body.kind === "cancel") {
        streams.get(body.stream)?.({ ok: false, error: { code: "CANCELLED", message: "the client cancelled the stream" } });
        return reply(ws, id, { ok: true, result: null });
      }
      handler.handle(body).then(
        (answer) => reply(ws, id, answer),
        (error: unknown) => reply(ws, id, { ok: false, error: { code: "INTERNAL", message: (error as Error)?.message ?? String(error) } }),
      );
    });
    ws.on("error", (error) => this.socketError(ws, error));
    ws.on("close", () => {
      for (const end of [...streams.values()]) end(undefined);
    });
  }

  /**
   * Starts a stream for request `id`. `streams` maps each open stream to
   * what ends it: with a final reply to send, or (the connection closed)
   * without one. Either way the handler's stop function runs once.
   */
  private openStream(ws: WebSocket, streams: Map<number, (final: ClientReply | undefined) => void>, id: number, query: unknown): void {
    const handler = this.options.clients as ClientHandler;
    if (handler.watch === undefined) return reply(ws, id, { ok: false, error: { code: "UNSUPPORTED", message: "this server does not serve streams" } });
    if (streams.has(id)) return reply(ws, id, { ok: false, error: { code: "INVALID_INPUT", message: `stream ${id} is already open` } });
    const limit = this.options.maxStreamsPerConnection ?? 1_000;
    if (streams.size >= limit) {
      return reply(ws, id, { ok: false, error: { code: "TOO_MANY_STREAMS", message: `this connection holds ${streams.size} streams, the most allowed; cancel some first`, details: { limit } } });
    }
    let closed = false;
    let stop: (() => void) | undefined;
    const end = (final: ClientReply | undefined) => {
      if (closed) return;
      closed = true;
      streams.delete(id);
      this.statistics.openStreams -= 1;
      if (final !== undefined) reply(ws, id, final);
      stop?.();
    };
    const sink: StreamSink = {
      send: (data) => {
        if (closed || ws.readyState !== ws.OPEN) return;
        corkForThisTick(ws);
        ws.send(JSON.stringify({ v: PROTOCOL_VERSION, t: "event", id, data }));
      },
      end,
      get bufferedBytes() {
        return ws.bufferedAmount;
      },
      get closed() {
        return closed || ws.readyState !== ws.OPEN;
      },
    };
    streams.set(id, end);
    this.statistics.openStreams += 1;
    try {
      const stopper = handler.watch(query, sink);
      if (closed) stopper();
      else stop = stopper;
    } catch (error) {
      end({ ok: false, error: { code: "INTERNAL", message: (error as Error)?.message ?? String(error) } });
    }
  }

  /** `ws` itself refuses oversized frames (1009) and invalid UTF-8 (1007): count and log those too. */
  private socketError(ws: WebSocket, error: Error): void {
    this.statistics.badFrames += 1;
    this.options.logger.warn("connection error; closing it", { reason: error.message.slice(0, 300) });
    ws.terminate();
  }

  private badFrame(ws: WebSocket, reason: string): void {
    this.statistics.badFrames += 1;
    this.options.logger.warn("bad frame; closing the connection", { reason: reason.slice(0, 300) });
    ws.close(1007, closeReason(reason));
  }
}

function reply(ws: WebSocket, id: number, answer: ClientReply): void {
  if (ws.readyState !== ws.OPEN) return;
  const frame = answer.ok ? { v: PROTOCOL_VERSION, t: "response", id, ok: true, result: answer.result } : { v: PROTOCOL_VERSION, t: "response", id, ok: false, error: answer.error };
  corkForThisTick(ws);
  ws.send(JSON.stringify(frame));
}

function parseJson(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    return value === null || typeof value !== "object" ? undefined : value;
  } catch {
    return undefined;
  }
}
