/**
 * The Synod side: bundle the `synod-kv` CLI (src/cli.ts) with esbuild (as
 * packages/server/test/processes.ts does for its fixture, so each server is
 * plain `node` with no TypeScript loader in its CPU figures), start three
 * `synod-kv serve` processes on loopback, and drive them with `KvClient`.
 *
 * BENCH_SYNOD_CPU_PROF=DIR starts the servers with `node --cpu-prof
 * --cpu-prof-dir=DIR` (profiles are written when a server exits cleanly).
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KvClient } from "@synod/app-kv";
import type { Cluster, KvDriver } from "./load.js";
import { bundleScript } from "@synod/testkit/processes";
import { startServeCluster, stopServers } from "./processes.js";

const here = dirname(fileURLToPath(import.meta.url));

/** Bundled once, inside this package (where `@node-rs/crc32` resolves), so each server is plain `node`. */
function bundleCli(): Promise<string> {
  return bundleScript(join(here, "..", "src", "cli.ts"), join(here, ".build", "synod-kv.mjs"));
}

export async function startSynodCluster(directory: string): Promise<Cluster> {
  const { urls, servers } = await startServeCluster({ script: await bundleCli(), label: "synod-kv", directory, ready: hasLeader });
  return {
    name: "synod",
    serverPids: servers.map((server) => server.pid),
    connect: async (concurrency) => connectSynod(urls, concurrency),
    stop: () => stopServers(servers),
  };
}

/** True once every replica names the same leader and a linearizable get is answered. */
async function hasLeader(urls: readonly string[]): Promise<boolean> {
  const client = new KvClient({ urls: [...urls], requestTimeoutMs: 1_000, operationTimeoutMs: 2_000 });
  try {
    const statuses = await Promise.all(urls.map(async (url) => (await client.replicaStatus(url)) as { leader?: string | null }));
    const leader = statuses[0]?.leader;
    if (typeof leader !== "string" || statuses.some((status) => status.leader !== leader)) return false;
    await client.get("synod-bench/health");
    return true;
  } finally {
    await client.close();
  }
}

/** One `KvClient` over the three servers, allowed `concurrency` commands in flight. */
function connectSynod(urls: readonly string[], concurrency: number): KvDriver {
  // A 10 s bound on each operation, as the etcd side's deadline.
  const client = new KvClient({ urls: [...urls], maxSessions: concurrency, operationTimeoutMs: 10_000 });
  return {
    put: async (key, value) => {
      await client.put(key, value);
    },
    // Linearizable by default (served by the leader after a quorum round).
    get: async (key) => (await client.get(key))?.value,
    compareAndSet: async (key, expected, value) => (await client.compareAndSet(key, expected, value)).succeeded,
    close: () => client.close(),
  };
}
