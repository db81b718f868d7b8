/**
 * The Synod side: bundle the `synod-lock` CLI (src/cli.ts) with esbuild, so
 * each server is plain `node` with no TypeScript loader in its CPU figures,
 * start three `synod-lock serve` processes on loopback, and drive them with
 * `LockClient`: one client per worker, each with one session (TTL 10 s).
 *
 * BENCH_SYNOD_CPU_PROF=DIR starts the servers with `node --cpu-prof
 * --cpu-prof-dir=DIR` (profiles are written when a server exits cleanly).
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleScript } from "@synod/testkit/processes";
import { startServeCluster, stopServers } from "../../app-kv/bench/processes.js";
import { LockClient, type LockEvent, type LockQueryResult, type LockSession } from "../src/index.js";
import { FifoChecker, type FifoCheck, type LockCluster, type LockWorker, type Workers } from "./load.js";

const SESSION_TTL_MS = 10_000;
/** Events read per `events` query when replaying a lock's grants. */
const EVENTS_PAGE = 10_000;
const here = dirname(fileURLToPath(import.meta.url));

/** Bundled once, inside this package (where `@node-rs/crc32` resolves), so each server is plain `node`. */
function bundleCli(): Promise<string> {
  return bundleScript(join(here, "..", "src", "cli.ts"), join(here, ".build", "synod-lock.mjs"));
}

export async function startSynodCluster(directory: string): Promise<LockCluster> {
  const { urls, servers } = await startServeCluster({ script: await bundleCli(), label: "synod-lock", directory, ready: hasLeader });
  // One more client, outside the workers, reads the record of grants.
  const observer = new LockClient({ urls: [...urls], operationTimeoutMs: 10_000 });
  return {
    name: "synod",
    serverPids: servers.map((server) => server.pid),
    openWorkers: (count, shareClient) => openWorkers(urls, count, shareClient),
    fifo: {
      mark: async (lock) => (await observer.lock(lock)).nextEvent,
      check: (lock, from) => checkFifo(observer, lock, from),
    },
    stop: async () => {
      await observer.close();
      await stopServers(servers);
    },
  };
}

/** True once every replica names the same leader and a linearizable read is answered. */
async function hasLeader(urls: readonly string[]): Promise<boolean> {
  const client = new LockClient({ urls: [...urls], requestTimeoutMs: 1_000, operationTimeoutMs: 2_000 });
  try {
    const statuses = await Promise.all(urls.map(async (url) => (await client.client.status(url)) as { leader?: string | null }));
    const leader = statuses[0]?.leader;
    if (typeof leader !== "string" || statuses.some((status) => status.leader !== leader)) return false;
    await client.locks("synod-bench/");
    return true;
  } finally {
    await client.close();
  }
}

/**
 * `count` workers, each with one session kept alive by its client: a
 * `LockClient` each, or one for all (allowed a command in flight per worker).
 * Each operation is bounded at 10 s, as the etcd side's deadline.
 */
async function openWorkers(urls: readonly string[], count: number, shareClient: boolean): Promise<Workers> {
  const clients = Array.from({ length: shareClient ? 1 : count }, () => new LockClient({ urls: [...urls], operationTimeoutMs: 10_000, maxSessions: shareClient ? count : 1 }));
  const sessions: LockSession[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(sessions.map((session) => session.close().catch(() => undefined)));
    await Promise.all(clients.map((client) => client.close()));
  };
  try {
    for (let index = 0; index < count; index += 1) sessions.push(await (clients[index % clients.length] as LockClient).session({ ttlMs: SESSION_TTL_MS }));
  } catch (error) {
    await close();
    throw error;
  }
  const workers = sessions.map(
    (session): LockWorker => ({
      cycle: async (lock) => {
        // Queues (FIFO) when the lock is taken; resolves once granted.
        const held = await session.acquire(lock);
        await held.release();
        return 0;
      },
    }),
  );
  return { workers, close };
}

/**
 * Replays `lock`'s events from index `from` to the present, from the lock
 * service's own record (the `events` query, read page by page at the leader),
 * through `FifoChecker`. Only the latest 100 000 events are kept: if some
 * were dropped, the order is reported unknown rather than guessed.
 */
async function checkFifo(client: LockClient, lock: string, from: number): Promise<FifoCheck> {
  const checker = new FifoChecker();
  const end = (await client.lock(lock)).nextEvent;
  for (let next = from; next < end; ) {
    const page = (await client.client.read<LockQueryResult>({ type: "events", from: next, limit: EVENTS_PAGE })) as Extract<LockQueryResult, { type: "events" }>;
    const first = page.events[0];
    if (first === undefined || first.index > next) return checker.result(`events from ${next} are no longer kept (the service keeps the latest 100 000); shorten BENCH_SECONDS`);
    for (const event of page.events) if (event.index < end) replay(checker, lock, event);
    next = page.next;
  }
  return checker.result();
}

function replay(checker: FifoChecker, lock: string, event: LockEvent): void {
  if (!("lock" in event) || event.lock !== lock) return;
  switch (event.type) {
    case "queued":
      return checker.queued(event.session);
    case "dequeued":
      return checker.dequeued(event.session);
    case "acquired":
      return checker.acquired(event.session, event.token);
    case "released":
      return;
  }
}
