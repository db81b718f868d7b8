/**
 * A real lock-service cluster for tests: each replica is a `synod-lock serve`
 * process (the CLI bundled once per run, so a process starts in tens of ms)
 * on loopback, with its own data directory; and the other processes the
 * scenarios run against it (fixtures, the CLI as a user runs it). Only
 * processes this harness started are ever signalled, by their PID.
 *
 * Every wait is bounded and says what it waited for, so a hang reads as a
 * message, not as vitest's timeout.
 */
import { type Server, type Socket, connect, createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ScriptProcess, type ScriptResult, ServeCluster, type ServeReplica, type ServeReplicaStatus, bundleScript, killScripts, runScript, sleep, spawnScript, until, within } from "@synod/testkit/processes";
import { LockClient, type LockClientOptions } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
let bundled: Promise<string> | undefined;

/** Bundles `src/cli.ts` once per test run. */
export function bundleCli(): Promise<string> {
  bundled ??= bundleScript(join(here, "..", "src", "cli.ts"), join(here, ".build", "synod-lock.mjs"));
  return bundled;
}

export { sleep, until, within };

export type Replica = ServeReplica;

export interface LockClusterOptions {
  readonly size?: number;
  /** Replica tick (default 20 ms: elections in 200–400 ms, a minimum session TTL of 600 ms). */
  readonly tickMs?: number;
  /** Extra `serve` flags for every replica. */
  readonly flags?: readonly string[];
}

/** A 3-process lock-service cluster (`ServeCluster` running `synod-lock serve`) with lock clients. */
export class LockCluster extends ServeCluster {
  /** Every client `client()` made, closed with the cluster. */
  private readonly clients: LockClient[] = [];

  static async start(options: LockClusterOptions = {}): Promise<LockCluster> {
    const cluster = new LockCluster({ ...options, script: await bundleCli() });
    return cluster.boot(() => cluster.waitForLeader());
  }

  /** A client of the whole cluster (or of the replicas given), closed with the cluster. */
  client(options: Partial<LockClientOptions> = {}): LockClient {
    const client = new LockClient({ urls: this.urls, requestTimeoutMs: 1_000, operationTimeoutMs: 20_000, ...options });
    this.clients.push(client);
    return client;
  }

  /** The replica every live replica agrees leads, waiting up to `timeoutMs` for one. */
  async waitForLeader(timeoutMs = 15_000): Promise<string> {
    const probe = new LockClient({ urls: this.urls, requestTimeoutMs: 500 });
    try {
      return await this.leaderBy((url) => probe.client.status(url) as Promise<ServeReplicaStatus>, timeoutMs);
    } finally {
      await probe.close();
    }
  }

  /** The live replicas, split into the one every live replica agrees leads and the rest. */
  async roles(): Promise<{ leader: Replica; followers: Replica[] }> {
    const leaderId = await this.waitForLeader();
    return {
      leader: this.replica(leaderId),
      followers: this.replicas.filter((replica) => replica.id !== leaderId && replica.child !== undefined),
    };
  }

  /** Closes every client it made, then the processes. */
  override async close(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.close().catch(() => undefined)));
    await super.close();
  }
}

// ---------------------------------------------------------------- other processes

export type ProcessResult = ScriptResult;
export type FixtureProcess = ScriptProcess;

/** Runs the CLI as a user would, to its end. */
export async function runCli(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<ProcessResult> {
  return runScript(await bundleCli(), args, options);
}

const fixtures = new Map<string, Promise<string>>();

/** Bundles `test/fixtures/<name>.ts` once per run (as `bundleCli` does the CLI), so a fixture process starts in tens of ms. */
export function bundleFixture(name: string): Promise<string> {
  let fixture = fixtures.get(name);
  if (fixture === undefined) {
    fixture = bundleScript(join(here, "fixtures", `${name}.ts`), join(here, ".build", `${name}.mjs`));
    fixtures.set(name, fixture);
  }
  return fixture;
}

export async function spawnFixture(name: string, args: readonly string[]): Promise<FixtureProcess> {
  return spawnScript(name, await bundleFixture(name), args);
}

/** SIGKILLs every fixture process still running (by PID): for `afterEach`, so a failed test leaves none behind. */
export const killFixtures = killScripts;

// ---------------------------------------------------------------- a relay that loses answers

/**
 * A TCP relay on loopback in front of one replica, for a client that knows
 * only the relay's URL. With `dropReplies` set it passes requests on but
 * swallows everything the replica sends back: the client's command is
 * applied, and its answer lost, deterministically. `retarget` points new
 * connections at another replica; open ones end when their replica does.
 */
export class Relay {
  /** Swallow what the replica sends (from now on, until cleared). */
  dropReplies = false;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private targetPort: number,
  ) {}

  static async start(targetUrl: string): Promise<Relay> {
    let relay: Relay | undefined;
    const server = createServer((socket) => relay?.accept(socket));
    const port = await new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        resolve(typeof address === "object" && address !== null ? address.port : 0);
      });
    });
    relay = new Relay(server, port, portOf(targetUrl));
    return relay;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** New connections go to `url`'s replica. */
  retarget(url: string): void {
    this.targetPort = portOf(url);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(downstream: Socket): void {
    const upstream = connect(this.targetPort, "127.0.0.1");
    this.sockets.add(downstream);
    this.sockets.add(upstream);
    const end = () => {
      downstream.destroy();
      upstream.destroy();
      this.sockets.delete(downstream);
      this.sockets.delete(upstream);
    };
    downstream.on("data", (chunk: Buffer) => upstream.write(chunk));
    upstream.on("data", (chunk: Buffer) => {
      if (!this.dropReplies) downstream.write(chunk);
    });
    for (const socket of [downstream, upstream]) {
      socket.on("error", end);
      socket.on("close", end);
    }
  }
}

function portOf(url: string): number {
  return Number(new URL(url.replace(/^ws/, "http")).port);
}
