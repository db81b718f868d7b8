import { NotLeaderError, type NodeId, type SynodNode } from "@synod/core";
import { Membership } from "@synod/membership";
import { type ClientHandler, type ClientReply, type ClientRequestBody, errorReply } from "@synod/transport-ws";

type MembersRequest = Extract<ClientRequestBody, { kind: "members" }>;

/**
 * Puts cluster membership in front of an application's client handler:
 * `members` requests are answered here, on the leader, with
 * `@synod/membership`; everything else goes to `inner`.
 */
export function withMembership<Op, Test, Result, Query, QueryResult>(
  inner: ClientHandler,
  node: SynodNode<Op, Test, Result, Query, QueryResult>,
  endpointOf: (id: NodeId) => string | undefined,
): ClientHandler {
  const membership = new Membership(node);
  const members = async (request: MembersRequest): Promise<ClientReply> => {
    try {
      const status = node.status();
      if (status.role !== "leader") throw new NotLeaderError(status.leader);
      if (request.action === "list") return { ok: true, result: membership.view() };
      const options = {
        expectedConfigId: request.expectedConfigId ?? status.config.id,
        ...(request.catchUpTimeoutMs === undefined ? {} : { catchUpTimeoutMs: request.catchUpTimeoutMs }),
        ...(request.endpoint === undefined ? {} : { endpoint: request.endpoint }),
      };
      const id = required(request.id, "id");
      switch (request.action) {
        case "add":
          return { ok: true, result: await (request.learner === true ? membership.addLearner(id, options) : membership.promote(id, options)) };
        case "promote":
          return { ok: true, result: await membership.promote(id, options) };
        case "remove":
          return { ok: true, result: await membership.remove(id, options) };
        case "replace":
          return { ok: true, result: await membership.replace(id, required(request.replacement, "replacement"), options) };
      }
    } catch (error) {
      return errorReply(error, endpointOf);
    }
  };
  return {
    handle: (body) => (body.kind === "members" ? members(body) : inner.handle(body)),
    ...(inner.watch === undefined ? {} : { watch: inner.watch.bind(inner) }),
  };
}

function required(value: string | undefined, name: string): string {
  if (value === undefined) throw Object.assign(new Error(`a membership change needs \`${name}\``), { code: "INVALID_REQUEST" });
  return value;
}
