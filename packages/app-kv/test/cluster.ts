/**
 * A real KV cluster for tests: each replica is a `synod-kv serve` process
 * (the CLI bundled once per run, so a process starts in tens of ms) on
 * loopback, with its own data directory. Only processes this harness
 * started are ever signalled, by their PID.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ServeCluster, type ServeReplica, type ServeReplicaStatus, bundleScript, freePort } from "@synod/testkit/processes";
import { afterEach } from "vitest";
import { KvClient, type KvClientOptions } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
let bundled: Promise<string> | undefined;

/** Bundles `src/cli.ts` once per test run. */
export function bundleCli(): Promise<string> {
  bundled ??= bundleScript(join(here, "..", "src", "cli.ts"), join(here, ".build", "synod-kv.mjs"));
  return bundled;
}

export { freePort };

export type Replica = ServeReplica;

export interface KvClusterOptions {
  readonly size?: number;
  /** Replica tick (default 20 ms: elections in 200–400 ms). */
  readonly tickMs?: number;
  /** Extra `serve` flags for every replica. */
  readonly flags?: readonly string[];
}

/** A 3-process KV cluster (`ServeCluster` running `synod-kv serve`) with KV clients. */
export class KvCluster extends ServeCluster {
  static async start(options: KvClusterOptions = {}): Promise<KvCluster> {
    const cluster = new KvCluster({ ...options, script: await bundleCli() });
    return cluster.boot(() => cluster.waitForLeader());
  }

  /** A client of the whole cluster (or of the replicas given). */
  client(options: Partial<KvClientOptions> = {}): KvClient {
    return new KvClient({ urls: this.urls, requestTimeoutMs: 1_000, operationTimeoutMs: 20_000, ...options });
  }

  /** The replica every live replica agrees leads, waiting up to `timeoutMs` for one. */
  async waitForLeader(timeoutMs = 15_000): Promise<string> {
    const probe = new KvClient({ urls: this.urls, requestTimeoutMs: 500 });
    try {
      return await this.leaderBy((url) => probe.replicaStatus(url) as Promise<ServeReplicaStatus>, timeoutMs);
    } finally {
      await probe.close();
    }
  }
}

/**
 * What a test file's tests start: at most one cluster and its clients, all
 * closed after each test (registered with `afterEach` when called).
 */
export function perTestCluster(): { cluster: KvCluster | undefined; readonly clients: KvClient[] } {
  const context: { cluster: KvCluster | undefined; readonly clients: KvClient[] } = { cluster: undefined, clients: [] };
  afterEach(async () => {
    await Promise.all(context.clients.splice(0).map((client) => client.close()));
    await context.cluster?.close();
    context.cluster = undefined;
  });
  return context;
}

/** The JSON log lines a replica wrote whose message is `message` (or matches it), from its `from`th log chunk on. */
export function logLines(replica: { readonly logs: readonly string[] }, message: string | RegExp, from = 0): Record<string, unknown>[] {
  const matches = (text: string) => (typeof message === "string" ? text === message : message.test(text));
  return replica.logs
    .slice(from)
    .join("")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => matches(String(line.msg)));
}
