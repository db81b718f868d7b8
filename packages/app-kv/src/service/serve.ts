import { ConfigError, type RunningServer, type ServerConfigInput, startServer } from "@synod/server";
import type { Logger } from "@synod/transport-ws";
import { z } from "zod";
import { DEFAULT_QUOTA_BYTES, KvMachine } from "../kv-machine.js";
import type { KvOp, KvQuery, KvQueryResult, KvResult, KvTest } from "../ops.js";
import { DEFAULT_LIMITS } from "../validate.js";
import { type KvNode, kvClientHandler } from "./handler.js";
import { Housekeeper } from "./housekeeper.js";
import { WatchHub } from "./watch-hub.js";

const positive = z.number().int().positive();

/**
 * The KV options of a replica's configuration (the `kv` section). Options
 * that decide results (`quotaBytes`) must be equal on every replica; limits
 * are checked before proposing, so they may differ during a rolling change.
 */
export const kvOptionsSchema = z
  .strictObject({
    /** Live key and value bytes the store may hold before it raises the NOSPACE alarm (default 512 MiB). */
    quotaBytes: positive.default(DEFAULT_QUOTA_BYTES),
    /** Watch history kept, in events (default 100 000). */
    historyEvents: positive.default(100_000),
    maxKeyBytes: positive.default(DEFAULT_LIMITS.maxKeyBytes),
    maxValueBytes: positive.default(DEFAULT_LIMITS.maxValueBytes),
    maxTxnOps: positive.default(DEFAULT_LIMITS.maxTxnOps),
    maxRequestBytes: positive.default(DEFAULT_LIMITS.maxRequestBytes),
    /** Revisions of history kept for old reads and resuming watches; the leader compacts older ones (0: never). Default 100 000. */
    retainRevisions: z.number().int().nonnegative().default(100_000),
    /** A watcher with more bytes than this queued on its connection is cancelled with `WATCH_SLOW` (default 8 MiB). */
    watchBufferBytes: positive.default(8 * 1024 * 1024),
    /** How long a serializable read with `minRevision` waits for a lagging replica (default 1 000 ms). */
    lagWaitMs: positive.default(1_000),
    /** Watches on a replica without a leader for this long are ended with `NO_LEADER`, so clients resume on a replica that has one (default 3 000 ms). */
    noLeaderWatchMs: positive.default(3_000),
  })
  .default({
    quotaBytes: DEFAULT_QUOTA_BYTES,
    historyEvents: 100_000,
    ...DEFAULT_LIMITS,
    retainRevisions: 100_000,
    watchBufferBytes: 8 * 1024 * 1024,
    lagWaitMs: 1_000,
    noLeaderWatchMs: 3_000,
  });

export type KvOptions = z.infer<typeof kvOptionsSchema>;

/** A replica's configuration: the server's (see `@synod/server`) plus a `kv` section. */
export type KvServerConfigInput = ServerConfigInput & { readonly kv?: z.input<typeof kvOptionsSchema> };

export interface RunningKvServer extends RunningServer<KvOp, KvTest, KvResult, KvQuery, KvQueryResult> {
  readonly machine: KvMachine;
  readonly watches: WatchHub;
  readonly kv: KvOptions;
}

/**
 * Starts one KV replica: the state machine, the Paxos node over file
 * storage and WebSocket, the KV client handler (validation, serializable
 * reads, watches), and the leader's housekeeping (lease expiry, compaction).
 * Throws `ConfigError` listing every bad field.
 */
export async function startKvServer(input: unknown, options: { logger?: Logger } = {}): Promise<RunningKvServer> {
  const kv = parseKvOptions((input as { kv?: unknown } | null)?.kv);
  const machine = new KvMachine({ quotaBytes: kv.quotaBytes, eventRetention: { maxEvents: kv.historyEvents } });
  const watches = new WatchHub(machine, { maxBufferedBytes: kv.watchBufferBytes });
  const limits = { maxKeyBytes: kv.maxKeyBytes, maxValueBytes: kv.maxValueBytes, maxTxnOps: kv.maxTxnOps, maxRequestBytes: kv.maxRequestBytes };
  const running = await startServer(input, machine, {
    ...options,
    clients: (node, endpointOf, registry) => {
      node.on("applied", () => watches.onApplied());
      registry.gauge("synod_kv_revision", "The store's revision on this replica.", () => machine.revision);
      registry.gauge("synod_kv_keys", "Live keys.", () => machine.status().keyCount);
      registry.gauge("synod_kv_watches", "Watches served by this replica.", () => watches.size);
      const fenced = registry.counter("synod_kv_fencing_rejections_total", "Writes refused for a stale fencing token.");
      const handler = kvClientHandler(node, machine, watches, endpointOf, { limits, lagWaitMs: kv.lagWaitMs });
      return {
        ...handler,
        handle: async (body) => {
          const reply = await handler.handle(body);
          if (reply.ok && body.kind === "command" && containsFenced(reply.result)) fenced.inc();
          return reply;
        },
      };
    },
  });
  const housekeeper = new Housekeeper(running.node as KvNode, machine, running.logger, { retainRevisions: kv.retainRevisions });
  // A replica cut off from the leader stops learning changes: its watchers would wait forever on a stale feed.
  let leaderless: ReturnType<typeof setTimeout> | undefined;
  const onLeader = (leader: string | undefined) => {
    clearTimeout(leaderless);
    leaderless = undefined;
    if (leader !== undefined) return;
    leaderless = setTimeout(() => {
      if (watches.size > 0) running.logger.warn("no leader: ending watches so that clients resume elsewhere", { watches: watches.size });
      watches.close("NO_LEADER");
    }, kv.noLeaderWatchMs);
    leaderless.unref?.();
  };
  running.node.on("leader", onLeader);
  if (running.node.status().leader === undefined) onLeader(undefined);
  return {
    ...running,
    machine,
    watches,
    kv,
    stop: async () => {
      housekeeper.stop();
      clearTimeout(leaderless);
      watches.close();
      await running.stop();
    },
  };
}

/** Whether a command's result (an op's, or a transaction's) is a FENCED refusal. */
function containsFenced(result: unknown): boolean {
  const single = result as { type?: unknown; error?: { code?: unknown } } | null;
  if (single?.type === "error") return single.error?.code === "FENCED";
  const multi = result as { results?: readonly { type?: unknown; error?: { code?: unknown } }[] } | null;
  return multi?.results?.some((item) => item.type === "error" && item.error?.code === "FENCED") ?? false;
}

export function parseKvOptions(input: unknown): KvOptions {
  const result = kvOptionsSchema.safeParse(input);
  if (!result.success) throw new ConfigError(result.error.issues.map((issue) => `kv.${issue.path.join(".")}: ${issue.message}`));
  return result.data;
}
