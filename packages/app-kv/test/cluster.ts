/**
 * A real KV cluster for tests: each replica is a `synod-kv serve` process
 * (the CLI bundled once per run, so a process starts in tens of ms) on
 * loopback, with its own data directory. Only processes this harness
 * started are ever signalled, by their PID.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleScript, freePort } from "@synod/testkit/processes";
import { KvClient, type KvClientOptions } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
let bundled: Promise<string> | undefined;

/** Bundles `src/cli.ts` once per test run. */
export function bundleCli(): Promise<string> {
  bundled ??= bundleScript(join(here, "..", "src", "cli.ts"), join(here, ".build", "synod-kv.mjs"));
  return bundled;
}

export { freePort };

export interface Replica {
  readonly id: string;
  readonly url: string;
  child: ChildProcess | undefined;
  exited: Promise<void>;
  /** Everything the process wrote to stderr (JSON logs), across restarts. */
  readonly logs: string[];
}

export interface KvClusterOptions {
  readonly size?: number;
  /** Replica tick (default 20 ms: elections in 200–400 ms). */
  readonly tickMs?: number;
  /** Extra `serve` flags for every replica. */
  readonly flags?: readonly string[];
}

export class KvCluster {
  readonly replicas: Replica[] = [];
  private readonly directory = mkdtempSync(join(tmpdir(), "synod-kv-cluster-"));
  private script = "";
  private members = "";

  private constructor(private readonly options: KvClusterOptions) {}

  static async start(options: KvClusterOptions = {}): Promise<KvCluster> {
    const cluster = new KvCluster(options);
    cluster.script = await bundleCli();
    const size = options.size ?? 3;
    const ports: number[] = [];
    for (let index = 0; index < size; index += 1) ports.push(await freePort());
    for (let index = 0; index < size; index += 1) {
      cluster.replicas.push({ id: `n${index + 1}`, url: `ws://127.0.0.1:${ports[index]}`, child: undefined, exited: Promise.resolve(), logs: [] });
    }
    cluster.members = cluster.replicas.map((replica) => `${replica.id}=${replica.url}`).join(",");
    try {
      await Promise.all(cluster.replicas.map((replica) => cluster.launch(replica, false)));
      await cluster.waitForLeader();
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  get urls(): string[] {
    return this.replicas.map((replica) => replica.url);
  }

  replica(id: string): Replica {
    const found = this.replicas.find((replica) => replica.id === id);
    if (found === undefined) throw new Error(`no replica ${id}`);
    return found;
  }

  /** A client of the whole cluster (or of the replicas given). */
  client(options: Partial<KvClientOptions> = {}): KvClient {
    return new KvClient({ urls: this.urls, requestTimeoutMs: 1_000, operationTimeoutMs: 20_000, ...options });
  }

  /** The replica every live replica agrees leads, waiting up to `timeoutMs` for one. */
  async waitForLeader(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const probe = new KvClient({ urls: this.urls, requestTimeoutMs: 500 });
    try {
      while (Date.now() < deadline) {
        const views = await Promise.all(
          this.replicas
            .filter((replica) => replica.child !== undefined)
            .map((replica) => probe.replicaStatus(replica.url).then((status) => (status as { role: string; leader?: string }), () => undefined)),
        );
        const leaders = views.filter((view) => view?.role === "leader");
        if (leaders.length === 1) {
          const leader = views.find((view) => view?.role === "leader") as { id?: string } | undefined;
          const id = (leader as { id?: string } | undefined)?.id;
          if (id !== undefined) return id;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await probe.close();
    }
    throw new Error(`no leader within ${timeoutMs} ms:\n${this.replicas.map((replica) => replica.logs.join("").slice(-2000)).join("\n")}`);
  }

  /** Sends `signal` to a replica's process (SIGKILL, SIGTERM, SIGSTOP, SIGCONT). */
  signal(id: string, signal: NodeJS.Signals): void {
    const child = this.replica(id).child;
    if (child?.pid === undefined) throw new Error(`${id} is not running`);
    process.kill(child.pid, signal);
  }

  /** Kills a replica with SIGKILL and waits until it is gone. */
  async kill(id: string): Promise<void> {
    const replica = this.replica(id);
    if (replica.child === undefined) return;
    this.signal(id, "SIGKILL");
    await replica.exited;
  }

  /** Starts a stopped or killed replica again on its data directory. */
  async restart(id: string): Promise<void> {
    const replica = this.replica(id);
    if (replica.child !== undefined) throw new Error(`${id} is running`);
    await this.launch(replica, true);
  }

  /** Kills every process this cluster started and removes its directories. */
  async close(): Promise<void> {
    for (const replica of this.replicas) {
      const child = replica.child;
      if (child?.pid === undefined) continue;
      try {
        process.kill(child.pid, "SIGCONT");
        process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await Promise.all(this.replicas.map((replica) => replica.exited));
    rmSync(this.directory, { recursive: true, force: true });
  }

  private launch(replica: Replica, rejoin: boolean): Promise<void> {
    const args = [
      this.script,
      "serve",
      "--id",
      replica.id,
      "--members",
      this.members,
      "--data-dir",
      join(this.directory, replica.id),
      "--tick-ms",
      String(this.options.tickMs ?? 20),
      "--log-level",
      "info",
      ...(rejoin ? ["--rejoin"] : []),
      ...(this.options.flags ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    replica.child = child;
    replica.exited = new Promise((resolve) =>
      child.once("exit", () => {
        if (replica.child === child) replica.child = undefined;
        resolve();
      }),
    );
    child.stderr?.on("data", (chunk: Buffer) => replica.logs.push(chunk.toString()));
    return new Promise((resolve, reject) => {
      let output = "";
      const timer = setTimeout(() => reject(new Error(`${replica.id} not ready in 20 s:\n${replica.logs.join("")}`)), 20_000);
      child.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes(" ready on port ")) {
          clearTimeout(timer);
          resolve();
        }
      });
      void replica.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${replica.id} exited before it was ready:\n${replica.logs.join("")}`));
      });
    });
  }
}
