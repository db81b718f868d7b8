import { type RunningServer, parseServerConfig, startServer } from "@synod/server";
import type { Logger } from "@synod/transport-ws";
import { LockMachine } from "../lock-machine.js";
import type { LockOp, LockQueryOp, LockQueryResult, LockResult } from "../ops.js";
import { LockEventFeed } from "./event-feed.js";
import { lockClientHandler } from "./handler.js";
import { LOCK_PLANTED_BUGS, type LockNode, type LockPlantedBug, SessionKeeper } from "./keeper.js";
import { lockMetrics } from "./metrics.js";

export interface RunningLockServer extends RunningServer<LockOp, never, LockResult, LockQueryOp, LockQueryResult> {
  readonly machine: LockMachine;
  /** The shortest session TTL this cluster accepts: 1.5× its longest election timeout. */
  readonly minSessionTtlMs: number;
}

/**
 * Starts one lock-service replica: the lock state machine on a Paxos node
 * over file storage and WebSocket, the lock client handler, and the leader's
 * session keeper. The configuration is the server's (see `@synod/server`);
 * throws `ConfigError` listing every bad field.
 */
export async function startLockServer(input: unknown, options: { logger?: Logger } = {}): Promise<RunningLockServer> {
  const config = parseServerConfig(input);
  // Election timeouts are drawn from [electionTicks, 2 × electionTicks) ticks.
  const minSessionTtlMs = Math.ceil(1.5 * 2 * config.electionTicks * config.tickMs);
  const machine = new LockMachine({ minSessionTtlMs });
  const feed = new LockEventFeed(machine);
  let keeper: SessionKeeper | undefined;
  let logger: Logger | undefined = options.logger;
  const running = await startServer(input, machine, {
    ...options,
    clients: (node, endpointOf, registry) => {
      const metrics = lockMetrics(registry, machine);
      const log = { warn: (message: string, fields?: Record<string, unknown>) => logger?.warn(message, fields) };
      keeper = new SessionKeeper(node as LockNode, machine, log, { renewEveryMs: Math.max(20, Math.floor(minSessionTtlMs / 6)), bugs: new Set(config.appBugs as LockPlantedBug[]) });
      node.on("applied", () => {
        feed.onApplied();
        metrics.onApplied();
      });
      return lockClientHandler(node as LockNode, machine, keeper, feed, endpointOf, metrics);
    },
    appBugs: LOCK_PLANTED_BUGS,
  });
  logger = running.logger;
  return {
    ...running,
    machine,
    minSessionTtlMs,
    stop: async () => {
      keeper?.stop();
      feed.close();
      await running.stop();
    },
  };
}
