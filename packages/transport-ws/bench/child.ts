/**
 * The second process of `round-trip.ts` (bundled with esbuild, run with plain
 * `node`). Config comes as JSON in argv[2]; it talks to the parent over the
 * IPC channel. It serves, on 127.0.0.1:
 *
 * - a raw `ws` echo (`WebSocketServer` echoing every frame as it came, no
 *   decoding): the floor; on `/json`, `/json-hand` and `/binary` the same
 *   server decodes and validates each peer message and encodes the reply
 *   (from/to swapped) with today's JSON + zod, JSON + the hand validator, or
 *   the binary sketch: ws plus a codec, no Synod;
 * - a `SynodServer` (`replica-b`, HMAC handshake with the secret) whose
 *   `onPeerMessage` sends the message straight back, with `from`/`to`
 *   swapped, through a `WsTransport` (`PeerLink`) to the parent's
 *   `SynodServer` (`replica-a`);
 * - `/client` on the same server, with a handler that answers `read` with its query.
 */
import type { Message } from "@synod/core";
import { WebSocketServer } from "ws";
import { type ClientHandler, SynodServer, WsTransport, jsonLogger, peerMessageFrame } from "../src/index.js";
import { decodeBinary, encodeBinary, validateByHand } from "./codecs.js";
import { CHILD_NODE, CLUSTER_ID, type Variant, setVariants } from "./shared.js";

interface ChildConfig {
  /** The parent's SynodServer, e.g. ws://127.0.0.1:port */
  readonly parentUrl: string;
  readonly parentNode: string;
  readonly secret: string;
}

const config = JSON.parse(process.argv[2] ?? "{}") as ChildConfig;
const logger = jsonLogger({ level: "warn", fields: { process: "bench-child" } });

async function main(): Promise<void> {
  const send = (message: unknown): void => {
    process.send?.(message);
  };

  const raw = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
  raw.on("connection", (ws, request) => {
    if (request.url === "/json") {
      ws.on("message", (data) => {
        const frame = peerMessageFrame.safeParse(JSON.parse((data as Buffer).toString()));
        if (!frame.success) return ws.close(1007, "invalid peer frame");
        const m = frame.data.m as Message;
        ws.send(JSON.stringify({ v: 1, t: "msg", m: { ...m, from: m.to, to: m.from } }));
      });
    } else if (request.url === "/json-hand") {
      ws.on("message", (data) => {
        const m = validateByHand(JSON.parse((data as Buffer).toString()));
        if (m === undefined) return ws.close(1007, "invalid peer frame");
        ws.send(JSON.stringify({ v: 1, t: "msg", m: { ...m, from: m.to, to: m.from } }));
      });
    } else if (request.url === "/binary") {
      ws.on("message", (data) => {
        const m = decodeBinary(data as Buffer);
        if (m === undefined) return ws.close(1007, "invalid peer frame");
        ws.send(encodeBinary({ ...m, from: m.to, to: m.from }) as Buffer);
      });
    } else {
      ws.on("message", (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    }
  });
  const rawPort = await new Promise<number>((resolve) =>
    raw.on("listening", () => {
      const address = raw.address();
      resolve(typeof address === "object" && address !== null ? address.port : 0);
    }),
  );

  const transport = new WsTransport({
    self: CHILD_NODE,
    clusterId: CLUSTER_ID,
    peers: [{ id: config.parentNode, url: config.parentUrl }],
    secret: config.secret,
    logger,
  });
  const clients: ClientHandler = {
    async handle(body) {
      if (body.kind === "read") return { ok: true, result: body.query };
      return { ok: false, error: { code: "UNSUPPORTED", message: `the bench echo answers reads only, not ${body.kind}` } };
    },
  };
  const server = new SynodServer({
    self: CHILD_NODE,
    clusterId: CLUSTER_ID,
    host: "127.0.0.1",
    port: 0,
    peers: [config.parentNode, CHILD_NODE],
    secret: config.secret,
    logger,
    onPeerMessage: (message: Message) => transport.send({ ...message, from: message.to, to: message.from }),
    clients,
  });
  const synodPort = await server.listen();

  process.on("message", (request: { type?: string; variants?: Variant[] }) => {
    if (request.type === "cpu") {
      send({ type: "cpu", usage: process.cpuUsage() });
    } else if (request.type === "variants") {
      setVariants(request.variants ?? []);
      send({ type: "variants" });
    } else if (request.type === "stats") {
      send({ type: "stats", server: server.statistics, transport: transport.statistics() });
    }
  });
  // The parent went away (or closed the channel): nothing left to serve.
  process.on("disconnect", () => process.exit(0));
  send({ type: "ready", rawPort, synodPort });
}

main().catch((error: unknown) => {
  process.stderr.write(`bench child failed: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
