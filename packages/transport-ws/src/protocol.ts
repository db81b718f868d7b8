import { type Command, commandSchema, messageSchema } from "@synod/core";
import { z } from "zod";

/**
 * The wire protocol, version 1. Every frame is a JSON text frame with `v`
 * (the protocol version) and `t` (its type), validated by these schemas at
 * the boundary; a frame that fails closes its connection with the reason.
 *
 * Peer connections (`/peer`): `challenge` → `hello` → `welcome`, then `msg`
 * frames carrying one core `Message` each. One connection per direction:
 * each replica dials every other and sends only on the links it dialled.
 *
 * Client connections (`/client`): `request` → `response`, matched by `id`.
 * A `watch` request opens a stream instead: the server sends `event` frames
 * with the request's `id`, in order, until a `response` with that `id` ends
 * it (an error says why: cancelled, slow, compacted...). A `cancel` request
 * ends a stream from the client's side.
 */
export const PROTOCOL_VERSION = 1;

const nonce = z.string().regex(/^[0-9a-f]{64}$/, "a nonce is 64 hex digits");
const mac = z.string().regex(/^[0-9a-f]{64}$/, "a MAC is 64 hex digits");
const nodeId = z.string().min(1).max(256);

export const challengeFrame = z.object({ v: z.literal(1), t: z.literal("challenge"), nonce, nodeId, clusterId: z.string().max(256) });
export const helloFrame = z.object({ v: z.literal(1), t: z.literal("hello"), nodeId, nonce, mac });
export const welcomeFrame = z.object({ v: z.literal(1), t: z.literal("welcome"), mac });
export const peerMessageFrame = z.object({ v: z.literal(1), t: z.literal("msg"), m: messageSchema });

export type ChallengeFrame = z.infer<typeof challengeFrame>;
export type HelloFrame = z.infer<typeof helloFrame>;
export type WelcomeFrame = z.infer<typeof welcomeFrame>;

const requestId = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const clientRequestBody = z.discriminatedUnion("kind", [
  /** A command through the log (ops, MultiOps, session open/close), exactly once per (session, seq). */
  z.object({ kind: z.literal("command"), command: commandSchema }),
  /** A linearizable read, served by the leader (read index). */
  z.object({ kind: z.literal("read"), query: z.unknown() }),
  /** A local, possibly stale read on whichever replica answers; carries the slot it reflects. */
  z.object({ kind: z.literal("read-local"), query: z.unknown() }),
  /** The answering replica's view: role, leader, slots. */
  z.object({ kind: z.literal("status") }),
  /**
   * Cluster membership, answered by the leader: `list` the configuration
   * and each member's role, lag and health; `add` a learner (`learner`) or a
   * voter (it joins as a learner, catches up, then votes), `remove`,
   * `promote`, or `replace` voter `id` with `replacement`. `endpoint` is
   * where a new member is reached; `expectedConfigId` makes a change
   * compare-and-set (default: the configuration the leader has now).
   */
  z.object({
    kind: z.literal("members"),
    action: z.enum(["list", "add", "remove", "promote", "replace"]),
    id: nodeId.optional(),
    replacement: nodeId.optional(),
    endpoint: z.string().regex(/^wss?:\/\/[^/]+$/, "an endpoint is ws://host:port or wss://host:port").optional(),
    learner: z.boolean().optional(),
    expectedConfigId: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER).optional(),
    catchUpTimeoutMs: z.number().int().positive().max(3_600_000).optional(),
  }),
  /** Opens a stream of `event` frames (a change feed), served by the replica that answers. */
  z.object({ kind: z.literal("watch"), query: z.unknown() }),
  /** Ends the stream the client opened with request `stream`. */
  z.object({ kind: z.literal("cancel"), stream: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER) }),
]);

export const clientRequestFrame = z.object({ v: z.literal(1), t: z.literal("request"), id: requestId, body: clientRequestBody });

export type ClientRequestBody = z.infer<typeof clientRequestBody>;

/** A typed error as clients receive it; `leaderUrl` lets them go straight to the leader. */
export const errorReplySchema = z.object({
  code: z.string().min(1).max(64),
  message: z.string().max(4096),
  leaderHint: z.string().optional(),
  leaderUrl: z.string().optional(),
  /** Machine-readable facts about the error (a resume revision, a limit...). */
  details: z.record(z.string(), z.unknown()).optional(),
});
export type WireError = z.infer<typeof errorReplySchema>;

export const clientResponseFrame = z.object({
  v: z.literal(1),
  t: z.literal("response"),
  id: requestId,
  ok: z.boolean(),
  result: z.unknown().optional(),
  error: errorReplySchema.optional(),
});
export type ClientResponseFrame = z.infer<typeof clientResponseFrame>;

/** One item of a stream, for the `watch` request `id`. */
export const clientEventFrame = z.object({ v: z.literal(1), t: z.literal("event"), id: requestId, data: z.unknown() });

/** What the client receives: a response, or an item of a stream. */
export const clientServerFrame = z.discriminatedUnion("t", [clientResponseFrame, clientEventFrame]);

/** Answer to a request, before framing. */
export type ClientReply = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly error: WireError };

/** Where a stream's items go. */
export interface StreamSink {
  /** Sends one item (ignored once the stream ended or its connection closed). */
  send(data: unknown): void;
  /** Ends the stream with a final reply; later calls are ignored. */
  end(reply: ClientReply): void;
  /** Bytes queued on the connection and not yet written: how far behind the reader is. */
  readonly bufferedBytes: number;
  /** The stream ended, or its connection closed. */
  readonly closed: boolean;
}

/** What a client-facing server needs from the replica behind it. */
export interface ClientHandler {
  handle(body: Exclude<ClientRequestBody, { kind: "watch" | "cancel" }>): Promise<ClientReply>;
  /**
   * Opens a stream for a `watch` request; returns what stops it (called when
   * the client cancels or disconnects). Without it, `watch` is refused.
   * It may call `sink.end` at once (a bad query, history compacted...).
   */
  watch?(query: unknown, sink: StreamSink): () => void;
}

export type { Command };
