import type { NodeId, SynodNode } from "@synod/core";
import type { ClientHandler, ClientReply, ClientRequestBody, WireError } from "./protocol.js";

/**
 * A thrown error as a wire reply: its `code`, message and `details`; a
 * `leaderHint` also gets the leader's endpoint so the client goes there.
 */
export function errorReply(error: unknown, endpointOf: (id: NodeId) => string | undefined): ClientReply {
  const { code, message, leaderHint, details } = error as { code?: unknown; message?: unknown; leaderHint?: unknown; details?: unknown };
  const wire: WireError = {
    code: typeof code === "string" ? code : "INTERNAL",
    message: typeof message === "string" ? message : String(error),
    ...(details !== null && typeof details === "object" ? { details: details as Record<string, unknown> } : {}),
  };
  if (typeof leaderHint === "string") {
    const leaderUrl = endpointOf(leaderHint);
    return { ok: false, error: { ...wire, leaderHint, ...(leaderUrl === undefined ? {} : { leaderUrl }) } };
  }
  return { ok: false, error: wire };
}

/**
 * Answers client requests from a `SynodNode`: commands through `submit`
 * (exactly once per session and sequence number), linearizable reads through
 * `read`, local reads and status. Errors become typed wire errors; a
 * `NOT_LEADER` carries the leader's id and endpoint so the client goes there.
 */
export function nodeClientHandler(node: SynodNode, endpointOf: (id: NodeId) => string | undefined): ClientHandler {
  return {
    async handle(body: Exclude<ClientRequestBody, { kind: "watch" | "cancel" }>): Promise<ClientReply> {
      try {
        switch (body.kind) {
          case "command": {
            const outcome = await node.submit(body.command);
            return outcome.ok ? { ok: true, result: outcome.result } : { ok: false, error: outcome.error };
          }
          case "read":
            return { ok: true, result: await node.read(body.query) };
          case "read-local":
            return { ok: true, result: node.readLocal(body.query) };
          case "status":
            return { ok: true, result: node.status() };
          case "members":
            // Membership is the server's (it composes @synod/membership); a bare handler has none.
            return { ok: false, error: { code: "UNSUPPORTED", message: "this server does not manage membership" } };
        }
      } catch (error) {
        return errorReply(error, endpointOf);
      }
    },
  };
}
