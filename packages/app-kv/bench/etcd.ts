/**
 * The etcd side: find or install the `etcd` binary (Debian's `etcd-server`),
 * start three members on loopback, and drive them with the `etcd3` client.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, mkdirSync } from "node:fs";
import { delimiter, join } from "node:path";
import { Etcd3 } from "etcd3";
import type { Cluster, KvDriver } from "./load.js";
import { freePorts } from "@synod/testkit/processes";
import { type ServerProcess, logTail, pollUntil, spawnServer, stopServers } from "./processes.js";

const MEMBERS = ["e1", "e2", "e3"] as const;
const STARTUP_TIMEOUT_MS = 20_000;
const INSTALL_TIMEOUT_MS = 600_000;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The `etcd` binary on PATH (or Debian's /usr/bin/etcd), if any. */
function findEtcd(): string | undefined {
  const candidates = [...(process.env.PATH ?? "").split(delimiter).filter((entry) => entry !== "").map((entry) => join(entry, "etcd")), "/usr/bin/etcd"];
  return candidates.find(isExecutable);
}

/** Runs a command with a time bound; its output is kept, and printed only if it fails. */
function run(command: string, args: readonly string[]): { ok: boolean; output: string } {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    timeout: INSTALL_TIMEOUT_MS,
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}${result.error === undefined ? "" : String(result.error)}`;
  return { ok: result.status === 0, output };
}

function canSudo(): boolean {
  return spawnSync("sudo", ["-n", "true"], { stdio: "ignore", timeout: 10_000 }).status === 0;
}

/**
 * The path of `etcd`, installing Debian's `etcd-server` with apt-get if it is
 * missing (directly as root, else with `sudo -n`). Undefined, with the reason
 * printed, when it cannot be had: the bench then skips the etcd side.
 */
export function ensureEtcd(): string | undefined {
  const found = findEtcd();
  if (found !== undefined) return found;
  const asRoot = process.getuid?.() === 0;
  const prefix = asRoot ? [] : canSudo() ? ["sudo", "-n"] : undefined;
  if (prefix === undefined) {
    console.log("etcd is not on PATH and apt-get needs root (not root, and `sudo -n` is not allowed): skipping the etcd side.");
    console.log("  Install it with `apt-get install -y etcd-server` (Debian) or put an `etcd` binary on PATH, then run again.");
    return undefined;
  }
  console.log(`etcd is not on PATH: installing Debian's etcd-server (${[...prefix, "apt-get install -y etcd-server"].join(" ")}) …`);
  for (const args of [
    ["apt-get", "update"],
    ["apt-get", "install", "-y", "--no-install-recommends", "etcd-server"],
  ]) {
    const command = [...prefix, ...args];
    const result = run(command[0] as string, command.slice(1));
    if (!result.ok) {
      console.log(`\`${command.join(" ")}\` failed: skipping the etcd side. Its last output:\n${result.output.split("\n").slice(-15).join("\n")}`);
      return undefined;
    }
  }
  const installed = findEtcd();
  if (installed === undefined) console.log("etcd-server was installed but no `etcd` binary was found: skipping the etcd side.");
  return installed;
}

/** "3.4.23" from `etcd --version`, or "unknown". */
export function etcdVersion(binary: string): string {
  const result = spawnSync(binary, ["--version"], { encoding: "utf8", timeout: 10_000 });
  return /etcd Version:\s*(\S+)/.exec(result.stdout ?? "")?.[1] ?? "unknown";
}

/** Three etcd members on loopback, in `directory` (data dirs and logs). */
export async function startEtcdCluster(binary: string, directory: string): Promise<Cluster> {
  const ports = await freePorts(MEMBERS.length * 2);
  const clientUrls = MEMBERS.map((_, index) => `http://127.0.0.1:${ports[index * 2] as number}`);
  const peerUrls = MEMBERS.map((_, index) => `http://127.0.0.1:${ports[index * 2 + 1] as number}`);
  const initialCluster = MEMBERS.map((name, index) => `${name}=${peerUrls[index] as string}`).join(",");
  const token = `synod-bench-${process.pid}-${Date.now()}`;
  const servers: ServerProcess[] = [];
  try {
    for (const [index, name] of MEMBERS.entries()) {
      const dataDirectory = join(directory, name);
      mkdirSync(dataDirectory, { recursive: true });
      const clientUrl = clientUrls[index] as string;
      const peerUrl = peerUrls[index] as string;
      // Defaults otherwise (heartbeat 100 ms, election 1000 ms, fsync on): etcd as it ships.
      const args = [
        `--name=${name}`,
        `--data-dir=${dataDirectory}`,
        `--listen-client-urls=${clientUrl}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        "--initial-cluster-state=new",
        `--initial-cluster-token=${token}`,
        "--logger=zap",
        "--log-outputs=stderr",
        "--log-level=warn",
      ];
      servers.push(spawnServer(`etcd ${name}`, binary, args, join(directory, `${name}.log`)));
    }
    const healthy = await pollUntil(() => etcdAnswers(clientUrls), STARTUP_TIMEOUT_MS, 200);
    if (!healthy) {
      const logs = servers.map((server) => `--- ${server.name} (pid ${server.pid}, ${server.child.exitCode === null ? "running" : `exited ${server.child.exitCode}`})\n${logTail(server)}`);
      throw new Error(`the etcd cluster did not answer a linearizable get on every member within ${STARTUP_TIMEOUT_MS / 1000} s:\n${logs.join("\n")}`);
    }
  } catch (error) {
    await stopServers(servers);
    throw error;
  }
  return {
    name: "etcd",
    serverPids: servers.map((server) => server.pid),
    connect: async (concurrency) => connectEtcd(clientUrls, concurrency),
    stop: () => stopServers(servers),
  };
}

/** True when every member answers a linearizable get (so the cluster has a leader and each member reaches it). */
async function etcdAnswers(clientUrls: readonly string[]): Promise<boolean> {
  const results = await Promise.all(
    clientUrls.map(async (url) => {
      // A fresh client per attempt: the default circuit breaker of a long-lived one would hold back retries while etcd starts.
      const client = new Etcd3({ hosts: url, dialTimeout: 1_000, defaultCallOptions: () => ({ deadline: Date.now() + 1_000 }) });
      try {
        await client.get("synod-bench/health").string();
        return true;
      } catch {
        return false;
      } finally {
        client.close();
      }
    }),
  );
  return results.every((ok) => ok);
}

/**
 * The etcd3 client over all three members, as an application would configure
 * it. It balances calls across the members; followers forward writes and
 * linearizable reads to the leader, as etcd clients normally see it. Every
 * call has a 10 s deadline, so a stuck call cannot hang the bench.
 */
function connectEtcd(clientUrls: readonly string[], _concurrency: number): KvDriver {
  const client = new Etcd3({ hosts: [...clientUrls], defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + 10_000 }) });
  return {
    put: async (key, value) => {
      await client.put(key).value(value);
    },
    // Linearizable (not serializable) is etcd3's default for ranges.
    get: async (key) => (await client.get(key).string()) ?? undefined,
    compareAndSet: async (key, expected, value) => {
      const result = await client.if(key, "Value", "==", expected).then(client.put(key).value(value)).commit();
      return result.succeeded;
    },
    close: async () => {
      client.close();
    },
  };
}
