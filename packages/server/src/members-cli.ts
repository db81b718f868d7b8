import { SynodClient } from "@synod/transport-ws";
import { UsageError, integerFlag } from "./cli-flags.js";

/** The flags of `members` (for `node:util` `parseArgs`), beside the client flags. */
export const MEMBERS_FLAGS = {
  learner: { type: "boolean" },
  "expected-config": { type: "string" },
  "catch-up-timeout-ms": { type: "string" },
} as const;

export const MEMBERS_USAGE = `  members list                       the configuration, and each member's role, lag and health
  members add ID=URL [--learner]     a new member: it catches up as a learner, then votes (unless --learner)
  members remove ID                  a voter or learner (the leader too: it hands over first)
  members promote ID                 a learner becomes a voter once caught up
  members replace OLD NEW=URL        NEW joins and catches up, then one entry swaps them
    --expected-config ID             refuse the change if the configuration is no longer ID (compare-and-set)
    --catch-up-timeout-ms N          how long a new member may take to catch up (default 60000)`;

/**
 * Runs `members …` against a cluster (either bundled service; any server
 * started by `@synod/server` answers) and returns what to print.
 */
export async function membersCommand(
  positionals: readonly string[],
  flags: { readonly learner?: boolean | undefined; readonly "expected-config"?: string | undefined; readonly "catch-up-timeout-ms"?: string | undefined },
  target: { readonly urls: string[]; readonly token?: string },
): Promise<unknown> {
  const [action, first, second] = positionals;
  const expectedConfigId = flags["expected-config"] === undefined ? undefined : Number(flags["expected-config"]);
  if (expectedConfigId !== undefined && !Number.isSafeInteger(expectedConfigId)) throw new UsageError(`--expected-config takes a configuration id, not ${flags["expected-config"]}`);
  const catchUpTimeoutMs = integerFlag("catch-up-timeout-ms", flags["catch-up-timeout-ms"]);
  const options = {
    ...(expectedConfigId === undefined ? {} : { expectedConfigId }),
    ...(catchUpTimeoutMs === undefined ? {} : { catchUpTimeoutMs }),
  };
  const client = new SynodClient({ ...target, operationTimeoutMs: (catchUpTimeoutMs ?? 60_000) + 30_000 });
  try {
    switch (action) {
      case "list":
        return await client.members({ action: "list" });
      case "add": {
        const { id, endpoint } = member(first, "members add ID=URL");
        return await client.members({ action: "add", id, endpoint, learner: flags.learner === true, ...options });
      }
      case "remove":
      case "promote":
        if (first === undefined) throw new UsageError(`members ${action} needs the member's ID`);
        return await client.members({ action, id: first, ...options });
      case "replace": {
        if (first === undefined) throw new UsageError("members replace OLD NEW=URL needs the voter to replace");
        const { id, endpoint } = member(second, "members replace OLD NEW=URL");
        return await client.members({ action: "replace", id: first, replacement: id, endpoint, ...options });
      }
      default:
        throw new UsageError(`members takes list, add, remove, promote or replace, not ${JSON.stringify(action ?? "")}`);
    }
  } finally {
    await client.close();
  }
}

function member(text: string | undefined, usage: string): { id: string; endpoint: string } {
  const match = text === undefined ? null : /^([^=]+)=(wss?:\/\/[^/]+)$/.exec(text);
  if (match === null) throw new UsageError(`${usage}: give the new member as ID=ws://host:port`);
  return { id: match[1] as string, endpoint: match[2] as string };
}
