/**
 * The processes and directories the KV benchmark starts, and what they cost.
 *
 * Every server is a direct child of the bench process, spawned here and
 * remembered by its PID; only those PIDs are ever signalled. Temp directories
 * made here are removed here. Both happen on a normal finish, on an error, on
 * SIGINT/SIGTERM and, as a last resort, in the `exit` handler (synchronously,
 * with SIGKILL).
 *
 * Server CPU is read from `/proc/PID/stat` (utime + stime, all threads of the
 * process, in clock ticks), so it costs the servers nothing to report it.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "@synod/testkit/processes";

/** A server process the bench started. */
export interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Where its stdout and stderr go (read only to explain a failure). */
  readonly logFile: string;
  readonly exited: Promise<void>;
}

const started = new Set<ServerProcess>();
const directories = new Set<string>();

function isRunning(server: ServerProcess): boolean {
  return server.child.exitCode === null && server.child.signalCode === null;
}

function signal(server: ServerProcess, name: NodeJS.Signals): void {
  if (!isRunning(server)) return;
  try {
    process.kill(server.pid, name);
  } catch {
    // Already gone between the check and the signal.
  }
}

/** Spawns `command` with its output in `logFile`; the process joins the set cleaned up at exit. */
export function spawnServer(name: string, command: string, args: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): ServerProcess {
  const log = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ["ignore", log, log], env: env ?? process.env });
  } finally {
    // The child holds its own copy of the descriptor.
    closeSync(log);
  }
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // A spawn failure (ENOENT) arrives as an error event; `exited` covers the rest.
  child.once("error", () => undefined);
  const server: ServerProcess = { name, pid: child.pid, child, logFile, exited };
  started.add(server);
  return server;
}

/** SIGTERM, then SIGKILL whatever is still running after `graceMs`; resolves once all have exited. */
export async function stopServers(servers: readonly ServerProcess[], graceMs = 5_000): Promise<void> {
  for (const server of servers) signal(server, "SIGTERM");
  const allExited = Promise.all(servers.map((server) => server.exited));
  const graceful = await Promise.race([allExited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!graceful) {
    for (const server of servers) signal(server, "SIGKILL");
    await Promise.race([allExited, sleep(2_000)]);
  }
  for (const server of servers) started.delete(server);
}

/** The last `lines` lines of a server's log, to explain why it did not start. */
export function logTail(server: ServerProcess, lines = 30): string {
  try {
    return readFileSync(server.logFile, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** A fresh directory under the OS temp dir, removed at exit. */
export function makeTempDirectory(prefix: string): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  directories.add(directory);
  return directory;
}

export function removeTempDirectory(directory: string): void {
  rmSync(directory, { recursive: true, force: true });
  directories.delete(directory);
}

function cleanUpNow(): void {
  for (const server of started) signal(server, "SIGKILL");
  started.clear();
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
  directories.clear();
}

/** Installs the exit and signal handlers (once). */
export function installCleanup(): void {
  process.on("exit", cleanUpNow);
  for (const name of ["SIGINT", "SIGTERM"] as const) {
    process.on(name, () => {
      process.stderr.write(`\n${name}: stopping the servers the bench started and removing its temp dirs\n`);
      cleanUpNow();
      process.exit(130);
    });
  }
}


// ---------------------------------------------------------------- CPU

/** Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`, 100 almost everywhere). */
export const CLOCK_TICKS_PER_SECOND: number = (() => {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8", timeout: 5_000 }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU time of a process so far (user + system, all its threads), in µs, at
 * the resolution of one clock tick (10 ms at 100 Hz). NaN once it has gone.
 */
export function processCpuMicros(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return Number.NaN;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of the whole line (utime, stime) are 12 and 13 here, counting from 1 at field 3.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000_000) / CLOCK_TICKS_PER_SECOND;
}

/** The sum of `processCpuMicros` over `pids`. */
export function serversCpuMicros(pids: readonly number[]): number {
  return pids.reduce((total, pid) => total + processCpuMicros(pid), 0);
}

/**
 * CPU time all processes on the machine have used so far (the `cpu` line of
 * /proc/stat: user, nice, system, irq, softirq, steal), in µs. Less ours, it
 * shows how busy other jobs kept the cores during a measurement.
 */
export function machineBusyMicros(): number {
  try {
    const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return ((user + nice + system + irq + softirq + steal) * 1_000_000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** CPU time of the bench process itself so far (user + system, GC threads included), in µs. */
export function clientCpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Calls `attempt` until it returns true, `pauseMs` apart, for at most `timeoutMs`; false if it never did. */
export async function pollUntil(attempt: () => Promise<boolean>, timeoutMs: number, pauseMs = 100): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await attempt().catch(() => false)) return true;
    await sleep(pauseMs);
  }
  return false;
}

/**
 * Starts three `serve` processes of a bundled Synod CLI on loopback for a
 * benchmark (logs at warn, as etcd's are; `BENCH_SYNOD_CPU_PROF=DIR` runs
 * them under `node --cpu-prof`), and waits until `ready(urls)` holds.
 * Stops them again if they never get there.
 */
export async function startServeCluster(options: { script: string; label: string; directory: string; ready: (urls: readonly string[]) => Promise<boolean> }): Promise<{ urls: string[]; servers: ServerProcess[] }> {
  const ids = ["n1", "n2", "n3"];
  const ports = await freePorts(ids.length);
  const urls = ports.map((port) => `ws://127.0.0.1:${port}`);
  const members = ids.map((id, index) => `${id}=${urls[index] as string}`).join(",");
  const profileDirectory = process.env.BENCH_SYNOD_CPU_PROF;
  const nodeFlags = profileDirectory === undefined || profileDirectory === "" ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDirectory}`];
  const servers: ServerProcess[] = [];
  const startupMs = 20_000;
  try {
    for (const id of ids) {
      const dataDirectory = join(options.directory, id);
      mkdirSync(dataDirectory, { recursive: true });
      const args = [...nodeFlags, options.script, "serve", "--id", id, "--members", members, "--data-dir", dataDirectory, "--log-level", "warn", ...(process.env.BENCH_SYNOD_FLAGS ?? "").split(" ").filter((flag) => flag !== "")];
      servers.push(spawnServer(`${options.label} ${id}`, process.execPath, args, join(options.directory, `${id}.log`)));
    }
    if (!(await pollUntil(() => options.ready(urls), startupMs, 200))) {
      const logs = servers.map((server) => `--- ${server.name} (pid ${server.pid}, ${server.child.exitCode === null ? "running" : `exited ${server.child.exitCode}`})\n${logTail(server)}`);
      throw new Error(`the ${options.label} cluster reported no leader within ${startupMs / 1000} s:\n${logs.join("\n")}`);
    }
  } catch (error) {
    await stopServers(servers);
    throw error;
  }
  return { urls, servers };
}
