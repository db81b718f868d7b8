import type { CommandBody, SynodNode } from "@synod/core";
import { type ClientHandler, type ClientReply, type WireError, nodeClientHandler } from "@synod/transport-ws";
import { z } from "zod";
import type { KvError } from "../errors.js";
import type { KvMachine } from "../kv-machine.js";
import type { KvOp, KvQuery, KvQueryResult, KvResult, KvTest } from "../ops.js";
import { DEFAULT_LIMITS, type KvLimits, validateOp, validateQuery, validateTxn } from "../validate.js";
import type { WatchHub } from "./watch-hub.js";

export type KvNode = SynodNode<KvOp, KvTest, KvResult, KvQuery, KvQueryResult>;

/**
 * A watch request as it crosses the wire: keys `[start, end)` (every key
 * from `start` without `end`), from `fromRevision` (0 or absent: from the
 * next change).
 */
export const watchQuerySchema = z.strictObject({
  start: z.string(),
  end: z.string().optional(),
  fromRevision: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
});
export type WatchQuery = z.infer<typeof watchQuerySchema>;

/** A serializable read may name the revision the client has seen: the replica must have applied it. */
const localReadSchema = z.looseObject({ minRevision: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional() });

export interface KvHandlerOptions {
  readonly limits?: KvLimits;
  /** How long a serializable read waits for a lagging replica to reach `minRevision` before answering `LAGGING` (default 1 s). */
  readonly lagWaitMs?: number;
}

/**
 * Answers KV clients: validates every request at the boundary (shape,
 * sizes, transaction limits) before anything is proposed, so the log never
 * carries what the store would refuse; serves serializable reads only from a
 * replica that has reached the client's `minRevision`; serves watches from
 * the hub.
 */
export function kvClientHandler(node: KvNode, machine: KvMachine, hub: WatchHub, endpointOf: (id: string) => string | undefined, options: KvHandlerOptions = {}): ClientHandler {
  const generic = nodeClientHandler(node as unknown as SynodNode, endpointOf);
  const limits = options.limits ?? DEFAULT_LIMITS;
  const lagWaitMs = options.lagWaitMs ?? 1_000;

  const reachRevision = (revision: number): Promise<boolean> => {
    if (machine.revision >= revision) return Promise.resolve(true);
    return new Promise((resolve) => {
      const stop = node.on("applied", () => {
        if (machine.revision < revision) return;
        clearTimeout(timer);
        stop();
        resolve(true);
      });
      const timer = setTimeout(() => {
        stop();
        resolve(machine.revision >= revision);
      }, lagWaitMs);
    });
  };

  return {
    async handle(body): Promise<ClientReply> {
      switch (body.kind) {
        case "command": {
          const error = checkCommand(body.command.body, limits);
          if (error !== undefined) return refuse(error);
          return generic.handle(body);
        }
        case "read": {
          const checked = validateQuery(body.query, limits);
          if (!checked.ok) return refuse(checked.error);
          return generic.handle({ kind: "read", query: checked.value });
        }
        case "read-local": {
          const envelope = localReadSchema.safeParse(body.query);
          if (!envelope.success) return refuse({ code: "INVALID_REQUEST", message: "a read is an object", reason: "not an object" });
          const { minRevision, ...query } = envelope.data;
          const checked = validateQuery(query, limits);
          if (!checked.ok) return refuse(checked.error);
          if (minRevision !== undefined && !(await reachRevision(minRevision))) {
            return {
              ok: false,
              error: {
                code: "LAGGING",
                message: `this replica has applied revision ${machine.revision}, behind the revision ${minRevision} the client has seen; ask another replica`,
                details: { revision: machine.revision, minRevision },
              },
            };
          }
          return generic.handle({ kind: "read-local", query: checked.value });
        }
        case "status":
        case "members":
          return generic.handle(body);
      }
    },

    watch(query, sink) {
      const parsed = watchQuerySchema.safeParse(query);
      if (!parsed.success) {
        sink.end({ ok: false, error: { code: "INVALID_REQUEST", message: `invalid watch: ${z.prettifyError(parsed.error)}`.slice(0, 4000) } });
        return () => undefined;
      }
      const { start, end, fromRevision } = parsed.data;
      return hub.watch({ start, ...(end === undefined ? {} : { end }) }, fromRevision ?? 0, {
        send: (batch) => sink.send(batch),
        end: (reason) => {
          const message =
            reason.code === "COMPACTED"
              ? `history before revision ${reason.compactRevision} was compacted; read the current state and watch from revision ${reason.compactRevision} or later`
              : reason.code === "WATCH_SLOW"
                ? `the watcher fell behind (its connection's buffer filled); resume from revision ${reason.resumeRevision}`
                : reason.code === "NO_LEADER"
                  ? `this replica has no leader, so its changes may be stale; resume on another replica from revision ${reason.resumeRevision}`
                  : `the replica is stopping; resume from revision ${reason.resumeRevision}`;
          const { code, ...details } = reason;
          sink.end({ ok: false, error: { code, message, details } });
        },
        get bufferedBytes() {
          return sink.bufferedBytes;
        },
      });
    },
  };
}

/** The boundary check of a command: operations and transactions against the limits; session commands pass. */
function checkCommand(body: CommandBody, limits: KvLimits): KvError | undefined {
  if (body.type === "op") {
    const checked = validateOp(body.op, limits);
    return checked.ok ? undefined : checked.error;
  }
  if (body.type === "multi") {
    const checked = validateTxn(body, limits);
    return checked.ok ? undefined : checked.error;
  }
  return undefined;
}

function refuse(error: KvError): ClientReply {
  const { code, message, ...details } = error;
  const wire: WireError = { code, message, details };
  return { ok: false, error: wire };
}
