/**
 * Helpers for tests and benchmarks that run Synod as real processes on
 * loopback: bundle a TypeScript entry once so each process starts with plain
 * `node` (tens of milliseconds, not a TypeScript loader's hundreds), and find
 * free ports.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { type Server, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { build } from "esbuild";

/**
 * Bundles `entry` (TypeScript, workspace packages resolved to their sources)
 * into one ESM file at `outfile` for Node 20. Native modules and the optional
 * native helpers of `ws` stay external: `outfile` must sit where Node can
 * resolve `@node-rs/crc32` (inside a package that depends on it). Written
 * to a temporary name and renamed, so concurrent test workers bundling the
 * same entry never see a half-written file.
 */
export async function bundleScript(entry: string, outfile: string): Promise<string> {
  mkdirSync(dirname(outfile), { recursive: true });
  await build({
    entryPoints: [entry],
    outfile: `${outfile}.${process.pid}.tmp`,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    conditions: ["@synod/source"],
    external: ["@node-rs/crc32", "bufferutil", "utf-8-validate"],
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    logLevel: "error",
  });
  renameSync(`${outfile}.${process.pid}.tmp`, outfile);
  return outfile;
}

/**
 * `count` distinct free TCP ports on loopback. All listeners are open at
 * once, so the OS cannot hand out the same port twice; the short race until a
 * process binds a port is acceptable in tests and benchmarks.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let index = 0; index < count; index += 1) {
      const server = createServer();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => {
            const address = server.address();
            resolve(typeof address === "object" && address !== null ? address.port : 0);
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

/** One free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0] as number;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` every `intervalMs` until it gives something other than
 * undefined or false, and resolves with it; throws naming `what` (and the
 * last error `probe` threw) after `timeoutMs`.
 */
export async function poll<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, what: string, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? "" : ` (last error: ${String(lastError)})`}`);
    await sleep(intervalMs);
  }
}

/** Polls `check` every `intervalMs` until it returns true, or throws naming `what` (and the last error `check` threw). */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, intervalMs = 20): Promise<void> {
  await poll(check, timeoutMs, what, intervalMs);
}

/** Settles `promise` within `timeoutMs` or rejects naming `what`. */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** One replica process of a `ServeCluster`. */
export interface ServeReplica {
  readonly id: string;
  readonly url: string;
  child: ChildProcess | undefined;
  exited: Promise<void>;
  /** Everything the process wrote to stderr (JSON logs), across restarts. */
  readonly logs: string[];
  /** Started with `--join`: a replica added to the running cluster (it learns the configuration from it). */
  joined?: boolean;
  /** `serve` flags for this replica alone, after the cluster's. */
  flags?: readonly string[];
  /** Where the process listens, when that is not its member URL (something stands in front of it: see `advertise`). */
  listenPort?: number;
}

export interface ServeClusterOptions {
  /** The bundled CLI whose `serve` command runs a replica (it prints `... ready on port N`). */
  readonly script: string;
  readonly size?: number;
  /** Replica tick (default 20 ms: elections in 200–400 ms). */
  readonly tickMs?: number;
  /** Extra `serve` flags for every replica. */
  readonly flags?: readonly string[];
  /**
   * Puts something in front of each replica (a fault proxy): given the
   * replica and the port its process will listen on, returns the member URL
   * everyone (peers and clients) reaches it at. Default: the listen port itself.
   */
  readonly advertise?: (id: string, listenPort: number) => Promise<string>;
}

/** The part of a replica's status a cluster harness reads. */
export interface ServeReplicaStatus {
  readonly id?: string;
  readonly role: string;
  readonly leader?: string;
}

/** Replica processes still running: killed when this process exits, however it exits (`process.exit`, an uncaught error). */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function outliving(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const replica of running) replica.kill("SIGKILL");
    });
  }
  running.add(child);
  child.once("exit", () => running.delete(child));
}

/**
 * A real cluster for tests and benchmarks: each replica a `serve` process of
 * a bundled Synod CLI on loopback, with its own data directory. Only the
 * processes it started are ever signalled, by their PID. `leaderBy`
 * takes how to read a replica's status (a client of the application).
 */
export class ServeCluster {
  readonly replicas: ServeReplica[] = [];
  private readonly directory = mkdtempSync(join(tmpdir(), "synod-cluster-"));
  private members = "";

  constructor(private readonly options: ServeClusterOptions) {}

  /** Starts every replica and waits until each says it is ready. */
  async launchAll(): Promise<void> {
    const ports = await freePorts(this.options.size ?? 3);
    for (const [index, port] of ports.entries()) {
      const id = `n${index + 1}`;
      const advertise = this.options.advertise;
      const url = advertise === undefined ? `ws://127.0.0.1:${port}` : await advertise(id, port);
      this.replicas.push({ id, url, child: undefined, exited: Promise.resolve(), logs: [], ...(advertise === undefined ? {} : { listenPort: port }) });
    }
    this.members = this.replicas.map((replica) => `${replica.id}=${replica.url}`).join(",");
    await Promise.all(this.replicas.map((replica) => this.launch(replica, false)));
  }

  /** Launches every replica, then `ready` (say, until a leader is agreed); closes everything if either fails. */
  async boot(ready: () => Promise<unknown>): Promise<this> {
    try {
      await this.launchAll();
      await ready();
    } catch (error) {
      await this.close();
      throw error;
    }
    return this;
  }

  get urls(): string[] {
    return this.replicas.map((replica) => replica.url);
  }

  replica(id: string): ServeReplica {
    const found = this.replicas.find((replica) => replica.id === id);
    if (found === undefined) throw new Error(`no replica ${id}`);
    return found;
  }

  /** The replica every live replica agrees leads, waiting up to `timeoutMs` for one. */
  async leaderBy(status: (url: string) => Promise<ServeReplicaStatus | undefined>, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const live = this.replicas.filter((replica) => replica.child !== undefined);
      const views = await Promise.all(live.map((replica) => status(replica.url).catch(() => undefined)));
      const leaders = views.filter((view) => view?.role === "leader");
      const leaderId = leaders[0]?.id;
      // Every live replica answers and names the same leader: a client sent anywhere ends up there.
      if (leaders.length === 1 && leaderId !== undefined && views.every((view) => view !== undefined && (view.role === "leader" || view.leader === leaderId))) return leaderId;
      await sleep(50);
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
    await within(replica.exited, 10_000, `${id} to exit after SIGKILL`);
  }

  /** Starts a killed replica again on its data directory (`--rejoin`), with `flags` for it alone if given (else those it had). */
  async restart(id: string, flags?: readonly string[]): Promise<void> {
    const replica = this.replica(id);
    if (replica.child !== undefined) throw new Error(`${id} is running`);
    if (flags !== undefined) replica.flags = flags;
    await this.launch(replica, true);
  }

  /**
   * Starts a new replica with `--join` (on a free port, or at the address of
   * a replica it replaces): it reaches the others, votes in nothing, and
   * waits for an operator to add it (`members add ID=URL`).
   */
  async join(id: string, flags: readonly string[] = []): Promise<ServeReplica> {
    const existing = this.replicas.find((replica) => replica.id === id);
    if (existing?.child !== undefined) throw new Error(`${id} is running`);
    const replica = existing ?? { id, url: `ws://127.0.0.1:${await freePort()}`, child: undefined, exited: Promise.resolve(), logs: [] };
    if (existing === undefined) this.replicas.push(replica);
    replica.joined = true;
    replica.flags = flags;
    await this.launch(replica, false);
    return replica;
  }

  /** Where a replica keeps its data (to damage it between runs, as a failing disk would). */
  dataDirectory(id: string): string {
    return join(this.directory, this.replica(id).id);
  }

  /** Removes a stopped replica's data directory: a wiped disk. */
  wipe(id: string): void {
    if (this.replica(id).child !== undefined) throw new Error(`${id} is running`);
    rmSync(join(this.directory, id), { recursive: true, force: true });
  }

  /** Kills every process it started and removes its directories. */
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
    await Promise.all(this.replicas.map((replica) => within(replica.exited, 10_000, `${replica.id} to exit`).catch(() => undefined)));
    rmSync(this.directory, { recursive: true, force: true });
  }

  private launch(replica: ServeReplica, rejoin: boolean): Promise<void> {
    // A joined replica reaches the replicas started with the cluster, and itself.
    const members = replica.joined === true && !this.members.split(",").some((member) => member.startsWith(`${replica.id}=`)) ? `${this.members},${replica.id}=${replica.url}` : this.members;
    const args = [
      this.options.script,
      "serve",
      "--id",
      replica.id,
      "--members",
      members,
      "--data-dir",
      join(this.directory, replica.id),
      "--tick-ms",
      String(this.options.tickMs ?? 20),
      ...(replica.listenPort === undefined ? [] : ["--listen", `127.0.0.1:${replica.listenPort}`]),
      "--log-level",
      "info",
      ...(rejoin ? ["--rejoin"] : []),
      ...(replica.joined === true ? ["--join"] : []),
      ...(this.options.flags ?? []),
      ...(replica.flags ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    replica.child = child;
    outliving(child);
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

/** How a script run ended. */
export interface ScriptResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a bundled script to its end (SIGKILLed after `timeoutMs`, then it throws). */
export async function runScript(script: string, args: readonly string[], options: { timeoutMs?: number; stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ScriptResult> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ["pipe", "pipe", "pipe"], ...(options.env === undefined ? {} : { env: options.env }) });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdin.end(options.stdin ?? "");
  const timeoutMs = options.timeoutMs ?? 15_000;
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once("close", (exitCode) => resolve(exitCode)));
  clearTimeout(timer);
  if (code === null) throw new Error(`${script} ${args.join(" ")} was killed after ${timeoutMs} ms:\n${stdout}\n${stderr}`);
  return { code, stdout, stderr };
}

/** A running script: its output so far, a wait for a line of it, signals by PID. */
export interface ScriptProcess {
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

const runningScripts = new Map<ChildProcess, Promise<number | null>>();

/** Starts a bundled script in the background (`name` names it in messages). */
export function spawnScript(name: string, script: string, args: readonly string[]): ScriptProcess {
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
      runningScripts.delete(child);
      resolve(code);
    }),
  );
  runningScripts.set(child, exited);
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

/** SIGKILLs every script `spawnScript` started that still runs (by PID): for `afterEach`. */
export async function killScripts(): Promise<void> {
  const children = [...runningScripts];
  for (const [child] of children) {
    if (child.pid === undefined) continue;
    try {
      process.kill(child.pid, "SIGCONT");
      process.kill(child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await Promise.all(children.map(([, exited]) => within(exited, 10_000, "a script to exit").catch(() => undefined)));
}
