import { createHash } from "node:crypto";
import type { CommandBody, SynodNode } from "@synod/core";
import { type ClientHandler, type ClientReply, nodeClientHandler } from "@synod/transport-ws";
import { z } from "zod";
import { type LockError, lockErrors } from "../errors.js";
import type { LockMachine } from "../lock-machine.js";
import type { LockOp } from "../ops.js";
import { MAX_LOCK_DELAY_MS, MAX_NAME_LENGTH, MAX_PERMITS, lockQuerySchema } from "../schema.js";
import { type LockEventFeed, lockWatchSchema } from "./event-feed.js";
import type { LockNode, SessionKeeper } from "./keeper.js";
import type { LockMetrics } from "./metrics.js";

/** A session's secret as clients hold it: the log keeps only its SHA-256. */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

const sessionId = z.string().min(1).max(256);
const secret = z.string().min(16, "a session secret is at least 16 characters").max(256);
const name = z.string().min(1).max(MAX_NAME_LENGTH);
const mode = z.enum(["exclusive", "shared"]);

/** Operations as clients send them: with the session's secret, never its hash; no internal operations. */
export const wireOpSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("open-session"), id: sessionId, ttlMs: z.number().int().positive().max(Number.MAX_SAFE_INTEGER), secret }),
  z.strictObject({ type: z.literal("close-session"), id: sessionId, secret }),
  z.strictObject({
    type: z.literal("acquire"),
    session: sessionId,
    secret,
    lock: name,
    mode,
    limit: z.number().int().min(1).max(MAX_PERMITS).optional(),
    wait: z.boolean(),
    lockDelayMs: z.number().int().nonnegative().max(MAX_LOCK_DELAY_MS).optional(),
  }),
  z.strictObject({ type: z.literal("release"), session: sessionId, secret, lock: name }),
  z.strictObject({ type: z.literal("cancel"), session: sessionId, secret, lock: name }),
  z.strictObject({ type: z.literal("force-release"), lock: name, session: sessionId.optional(), reason: z.string().min(1).max(1024) }),
]);
export type WireLockOp = z.infer<typeof wireOpSchema>;

/** Reads clients may send besides the machine's queries. */
export const wireQuerySchema = z.union([
  z.strictObject({ type: z.literal("keepalive"), session: sessionId, secret }),
  z.strictObject({ type: z.literal("await-grant"), session: sessionId, secret, lock: name, timeoutMs: z.number().int().positive().max(60_000) }),
  lockQuerySchema,
]);

/** What `await-grant` answers. */
export type AwaitGrantResult =
  | { readonly type: "granted"; readonly token: number }
  | { readonly type: "waiting"; readonly position: number }
  /** Not waiting and not holding: cancelled, or never queued. */
  | { readonly type: "not-waiting" }
  /** The session expired or was closed: the wait is over, without the lock. */
  | { readonly type: "session-gone" };

/** Turns a client's operation into the logged one (the secret becomes its hash). */
export function toLockOp(op: WireLockOp): LockOp {
  switch (op.type) {
    case "open-session":
      return { type: "open-session", id: op.id, ttlMs: op.ttlMs, secretHash: hashSecret(op.secret) };
    case "close-session":
      return { type: "close-session", id: op.id, secretHash: hashSecret(op.secret) };
    case "force-release":
      return op;
    default: {
      const { secret: plain, ...rest } = op;
      return { ...rest, secretHash: hashSecret(plain) } as LockOp;
    }
  }
}

/**
 * Answers lock clients: validates every request, turns secrets into hashes
 * before anything is logged, answers keepalives on the leader from memory
 * (see `SessionKeeper`), and serves `await-grant`: a blocked acquirer waits
 * there (on any replica) for its turn, its session's end, or a timeout.
 */
export function lockClientHandler(
  node: LockNode,
  machine: LockMachine,
  keeper: SessionKeeper,
  feed: LockEventFeed,
  endpointOf: (id: string) => string | undefined,
  metrics?: LockMetrics,
): ClientHandler {
  const generic = nodeClientHandler(node as unknown as SynodNode, endpointOf);

  const grantState = (session: string, lock: string): AwaitGrantResult => {
    if (machine.session(session) === undefined) return { type: "session-gone" };
    const info = machine.query({ type: "lock", lock });
    if (info.type !== "lock") return { type: "not-waiting" };
    const held = info.holders.find((holder) => holder.session === session);
    if (held !== undefined) return { type: "granted", token: held.token };
    const position = info.waiters.findIndex((waiter) => waiter.session === session);
    return position < 0 ? { type: "not-waiting" } : { type: "waiting", position: position + 1 };
  };

  const awaitGrant = (session: string, lock: string, timeoutMs: number): Promise<AwaitGrantResult> => {
    const now = grantState(session, lock);
    if (now.type !== "waiting") return Promise.resolve(now);
    return new Promise((resolve) => {
      const stop = node.on("applied", () => {
        const state = grantState(session, lock);
        if (state.type === "waiting") return;
        clearTimeout(timer);
        stop();
        resolve(state);
      });
      const timer = setTimeout(() => {
        stop();
        resolve(grantState(session, lock));
      }, timeoutMs);
    });
  };

  const refuse = (error: LockError | { code: string; message: string }): ClientReply => {
    const { code, message, ...details } = error as { code: string; message: string };
    return { ok: false, error: { code, message, details } };
  };

  return {
    async handle(body): Promise<ClientReply> {
      switch (body.kind) {
        case "command": {
          const command = body.command;
          if (command.body.type === "multi") return refuse(lockErrors.invalidRequest("the lock service has no transactions"));
          if (command.body.type !== "op") return generic.handle(body);
          const parsed = wireOpSchema.safeParse(command.body.op);
          if (!parsed.success) return refuse(lockErrors.invalidRequest(z.prettifyError(parsed.error).slice(0, 2_000)));
          const op = toLockOp(parsed.data);
          const logged: CommandBody = { type: "op", op };
          const reply = await generic.handle({ kind: "command", command: { ...command, body: logged } });
          if (op.type === "acquire") metrics?.acquire(reply.ok ? String((reply.result as { type?: unknown } | null)?.type ?? "unknown") : "error");
          return reply;
        }
        case "read":
        case "read-local": {
          const parsed = wireQuerySchema.safeParse(body.query);
          if (!parsed.success) return refuse(lockErrors.invalidRequest(z.prettifyError(parsed.error).slice(0, 2_000)));
          const query = parsed.data;
          if (query.type === "keepalive") {
            const answer = keeper.keepalive(query.session, hashSecret(query.secret));
            if (answer.ok) return { ok: true, result: { ttlMs: answer.ttlMs, remainingMs: answer.remainingMs } };
            const hint = "leaderHint" in answer.error ? answer.error.leaderHint : undefined;
            const leaderUrl = hint === undefined ? undefined : endpointOf(hint);
            const { code, message } = answer.error;
            return { ok: false, error: { code, message, ...(hint === undefined ? {} : { leaderHint: hint }), ...(leaderUrl === undefined ? {} : { leaderUrl }) } };
          }
          if (query.type === "await-grant") {
            // A linearizable wait: the leader confirms it is up to date (read index) before the first look
            // and before any answer other than a grant (a grant seen in the applied state is always real).
            // A lagging replica must never say "session gone" or "not waiting" for a wait that is alive.
            const barrier = () => (body.kind === "read" ? generic.handle({ kind: "read", query: { type: "session", id: query.session } }) : undefined);
            const first = await barrier();
            if (first !== undefined && !first.ok) return first;
            const session = machine.session(query.session);
            if (session !== undefined && session.secretHash !== hashSecret(query.secret)) return refuse(lockErrors.sessionAuthFailed(query.session));
            let state = await awaitGrant(query.session, query.lock, query.timeoutMs);
            if (state.type === "session-gone" || state.type === "not-waiting") {
              const confirm = await barrier();
              if (confirm !== undefined && !confirm.ok) return confirm;
              state = grantState(query.session, query.lock);
            }
            // A local read answers as the generic handler's do: the value and the slot it reflects.
            return { ok: true, result: body.kind === "read-local" ? { value: state, appliedThrough: node.status().appliedThrough } : state };
          }
          const reply = await generic.handle({ kind: body.kind, query });
          if (query.type === "check-token" && reply.ok) {
            const result = (body.kind === "read-local" ? (reply.result as { value?: unknown }).value : reply.result) as { valid?: unknown };
            metrics?.tokenChecked(result?.valid === true);
          }
          return reply;
        }
        case "status":
        case "members":
          return generic.handle(body);
      }
    },

    watch(query, sink) {
      const parsed = lockWatchSchema.safeParse(query);
      if (!parsed.success) {
        sink.end(refuse(lockErrors.invalidRequest(z.prettifyError(parsed.error).slice(0, 2_000))));
        return () => undefined;
      }
      return feed.watch(parsed.data, sink);
    },
  };
}
