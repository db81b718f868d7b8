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
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { type Server, type Socket, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleScript, freePorts } from "@synod/testkit/processes";
import { LockClient, type LockClientOptions } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
let bundled: Promise<string> | undefined;

/** Bundles `src/cli.ts` once per test run. */
export function bundleCli(): Promise<string> {
  bundled ??= bundleScript(join(here, "..", "src", "cli.ts"), join(here, ".build", "synod-lock.mjs"));
  return bundled;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `intervalMs` until it returns true, or throws naming `what` (and the last error `check` threw). */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? "" : ` (last error: ${String(lastError)})`}`);
    await sleep(intervalMs);
  }
}

/** Settles `promise` within `timeoutMs` or rejects naming `what`. */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface Replica {
  readonly id: string;
  readonly url: string;
  child: ChildProcess | undefined;
  exited: Promise<void>;
  /** Everything the process wrote to stderr (JSON logs), across restarts. */
  readonly logs: string[];
}

export interface LockClusterOptions {
  readonly size?: number;
  /** Replica tick (default 20 ms: elections in 200–400 ms, a minimum session TTL of 600 ms). */
  readonly tickMs?: number;
  /** Extra `serve` flags for every replica. */
  readonly flags?: readonly string[];
}

/** The part of a replica's status the harness reads. */
interface ReplicaStatus {
  readonly id?: string;
  readonly role: string;
  readonly leader?: string;
}

export class LockCluster {
  readonly replicas: Replica[] = [];
  /** Every client `client()` made, closed with the cluster. */
  private readonly clients: LockClient[] = [];
  private readonly directory = mkdtempSync(join(tmpdir(), "synod-lock-cluster-"));
  private script = "";
  private members = "";

  private constructor(private readonly options: LockClusterOptions) {}

  static async start(options: LockClusterOptions = {}): Promise<LockCluster> {
    const cluster = new LockCluster(options);
    cluster.script = await bundleCli();
    const ports = await freePorts(options.size ?? 3);
    ports.forEach((port, index) => {
      cluster.replicas.push({ id: `n${index + 1}`, url: `ws://127.0.0.1:${port}`, child: undefined, exited: Promise.resolve(), logs: [] });
    });
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

  /** A client of the whole cluster (or of the replicas given), closed with the cluster. */
  client(options: Partial<LockClientOptions> = {}): LockClient {
    const client = new LockClient({ urls: this.urls, requestTimeoutMs: 1_000, operationTimeoutMs: 20_000, ...options });
    this.clients.push(client);
    return client;
  }

  /** The replica every live replica agrees leads, waiting up to `timeoutMs` for one. */
  async waitForLeader(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const probe = new LockClient({ urls: this.urls, requestTimeoutMs: 500 });
    try {
      while (Date.now() < deadline) {
        const live = this.replicas.filter((replica) => replica.child !== undefined);
        const views = await Promise.all(live.map((replica) => probe.client.status(replica.url).then((status) => status as ReplicaStatus, () => undefined)));
        const leaders = views.filter((view) => view?.role === "leader");
        const leaderId = leaders[0]?.id;
        // Every live replica answers and names the same leader: a client sent anywhere ends up there.
        if (leaders.length === 1 && leaderId !== undefined && views.every((view) => view !== undefined && (view.role === "leader" || view.leader === leaderId))) return leaderId;
        await sleep(50);
      }
    } finally {
      await probe.close();
    }
    throw new Error(`no leader within ${timeoutMs} ms:\n${this.replicas.map((replica) => replica.logs.join("").slice(-2000)).join("\n")}`);
  }

  /** The live replicas, split into the one every live replica agrees leads and the rest. */
  async roles(): Promise<{ leader: Replica; followers: Replica[] }> {
    const leaderId = await this.waitForLeader();
    return {
      leader: this.replica(leaderId),
      followers: this.replicas.filter((replica) => replica.id !== leaderId && replica.child !== undefined),
    };
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
    await within(replica.exited, 10_000, `${id} to exit after SIGKILL`);
  }

  /** Starts a killed replica again on its data directory (`--rejoin`). */
  async restart(id: string): Promise<void> {
    const replica = this.replica(id);
    if (replica.child !== undefined) throw new Error(`${id} is running`);
    await this.launch(replica, true);
  }

  /** Closes every client it made, kills every process it started and removes its directories. */
  async close(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.close().catch(() => undefined)));
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
    await Promise.all(this.replicas.map((replica) => within(replica.exited, 10_000, `${replica.id} to exit`).catch(() => undefined)));
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

// ---------------------------------------------------------------- other processes

export interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the bundled `synod-lock` CLI with `args`, killing it after `timeoutMs`. */
export async function runCli(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<ProcessResult> {
  const script = await bundleCli();
  const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const timeoutMs = options.timeoutMs ?? 15_000;
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once("close", (exitCode) => resolve(exitCode)));
  clearTimeout(timer);
  if (code === null) throw new Error(`synod-lock ${args.join(" ")} was killed after ${timeoutMs} ms:\n${stdout}\n${stderr}`);
  return { code, stdout, stderr };
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

/** A fixture process: its output so far, and a wait for a line of it. */
export interface FixtureProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
  /** Waits for a stdout line that starts with `prefix`; returns that line. */
  line(prefix: string, timeoutMs: number): Promise<string>;
  /** Sends `signal` to it, by its PID. */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILLs it (by its PID) and waits until it is gone. */
  kill(): Promise<void>;
}

/** Every fixture process started and not yet gone: `killFixtures` ends them after a failed test. */
const running = new Map<ChildProcess, Promise<number | null>>();

export async function spawnFixture(name: string, args: readonly string[]): Promise<FixtureProcess> {
  const script = await bundleFixture(name);
  const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  running.set(child, exited);
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const output = () => `${stdout}${stderr === "" ? "" : `\n[stderr]\n${stderr}`}`;
  return {
    child,
    exited,
    output,
    async line(prefix, timeoutMs) {
      let found: string | undefined;
      await until(
        () => {
          found = stdout.split("\n").find((line) => line.startsWith(prefix));
          if (found === undefined && gone) throw new Error(`${name} exited without printing ${JSON.stringify(prefix)}:\n${output()}`);
          return found !== undefined;
        },
        timeoutMs,
        `${name} to print ${JSON.stringify(prefix)} (output so far:\n${output()})`,
        10,
      );
      return found as string;
    },
    signal(signal) {
      if (!gone && child.pid !== undefined) process.kill(child.pid, signal);
    },
    async kill() {
      if (!gone && child.pid !== undefined) {
        process.kill(child.pid, "SIGCONT");
        process.kill(child.pid, "SIGKILL");
      }
      await within(exited, 10_000, `${name} to exit after SIGKILL`);
    },
  };
}

/** SIGKILLs every fixture process still running (by PID): for `afterEach`, so a failed test leaves none behind. */
export async function killFixtures(): Promise<void> {
  const children = [...running];
  for (const [child] of children) {
    if (child.pid === undefined) continue;
    try {
      process.kill(child.pid, "SIGCONT");
      process.kill(child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await Promise.all(children.map(([, exited]) => within(exited, 10_000, "a fixture to exit").catch(() => undefined)));
}

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
