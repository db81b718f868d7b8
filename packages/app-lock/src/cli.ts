#!/usr/bin/env node
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { CLIENT_FLAGS, SERVE_FLAGS, UsageError, clientTarget, configFromServeFlags, exitOnError, integerFlag, MEMBERS_FLAGS, MEMBERS_USAGE, membersCommand, parseFlags, stopOnSignals } from "@synod/server";
import { LockClient, LockWaitError } from "./client/lock-client.js";
import { startLockServer } from "./service/serve.js";

const USAGE = `synod-lock: a Chubby-style lock service on Synod (Multi-Paxos)

Run a replica:
  synod-lock serve --id n1 --members n1=ws://127.0.0.1:7501,n2=ws://127.0.0.1:7502,n3=ws://127.0.0.1:7503 --data-dir ./data/n1
  synod-lock serve --config replica.json      (the server's configuration as JSON; flags override it)
  serve flags: --id ID  --members ID=URL,...  --data-dir DIR  --listen HOST:PORT  --cluster-id NAME
               --secret SECRET (or SYNOD_SECRET)  --rejoin  --join (a new replica of a running cluster)  --tick-ms N
               --snapshot-every-slots N  --snapshot-every-bytes N  --snapshot-tail-slots N  --snapshot-chunk-bytes N
               --lease-ms N (master lease; 0: a read-index round per read)  --max-clock-drift F (the clock bound leases assume, default 0.01)  --log-level debug|info|warn|error

Run a 3-replica cluster on this machine (development; data kept between runs):
  synod-lock dev [--data-dir DIR] [--port 7501]        (replicas on ports 7501-7503 by default; Ctrl-C stops them)

Use a cluster (endpoints: --endpoints URL,... or SYNOD_ENDPOINTS; default ws://127.0.0.1:7501):
  synod-lock lock NAME [--ttl MS] [--shared] [--no-wait] [--timeout MS] [--grace MS] -- COMMAND [ARGS...]
      runs COMMAND only while NAME is held; its environment has SYNOD_LOCK_NAME and SYNOD_LOCK_TOKEN
      (the fencing token). If the lock may be lost, COMMAND gets SIGTERM, then SIGKILL after --grace
      (default 2000 ms). Exits with COMMAND's exit code (or 128 + signal number).
  synod-lock status [NAME]                 holders and waiters of NAME (or of every lock)
  synod-lock sessions                      every session with its deadline, holds and waits
  synod-lock release NAME --force --reason TEXT [--session ID]
                                           operator release of a lock's holders (recorded)
  synod-lock members list | add ID=URL [--learner] | remove ID | promote ID | replace OLD NEW=URL
${MEMBERS_USAGE}
  common flags: --endpoints URL,...  --token TOKEN (or SYNOD_TOKEN)

Exit status: 0 done, 1 the cluster refused or failed, 2 bad usage, 3 lock busy or wait timed out.
`;

const options = {
  help: { type: "boolean", short: "h" },
  ...SERVE_FLAGS,
  ...CLIENT_FLAGS,
  ...MEMBERS_FLAGS,
  ttl: { type: "string" },
  shared: { type: "boolean" },
  "no-wait": { type: "boolean" },
  timeout: { type: "string" },
  grace: { type: "string" },
  force: { type: "boolean" },
  reason: { type: "string" },
  session: { type: "string" },
  port: { type: "string" },
} as const;

type Flags = ReturnType<typeof parse>["values"];

const parse = (argv: string[]) => parseFlags(argv, options);

function integer(flags: Flags, name: keyof Flags): number | undefined {
  return integerFlag(name, flags[name]);
}

async function serve(flags: Flags): Promise<void> {
  const config = configFromServeFlags(flags);
  const running = await startLockServer(config);
  stopOnSignals(running);
  // Started by `synod-lock dev`: stop with it, even if it was killed without a chance to stop us.
  const parent = Number(process.env.SYNOD_LOCK_DEV_PARENT);
  if (Number.isSafeInteger(parent) && parent > 0) {
    setInterval(() => {
      try {
        process.kill(parent, 0);
      } catch {
        process.kill(process.pid, "SIGTERM");
      }
    }, 500).unref();
  }
  process.stdout.write(`synod-lock ${running.config.id} ready on port ${running.port} (sessions need a TTL of at least ${running.minSessionTtlMs} ms)\n`);
}

/** Three `serve` processes of this very program on loopback, until interrupted. */
async function dev(flags: Flags): Promise<number> {
  const base = integer(flags, "port") ?? 7501;
  const dataDir = resolve(flags["data-dir"] ?? join(process.env.INIT_CWD ?? process.cwd(), ".synod", "lock"));
  const ids = ["n1", "n2", "n3"];
  const urls = ids.map((_, index) => `ws://127.0.0.1:${base + index}`);
  const members = ids.map((id, index) => `${id}=${urls[index]}`).join(",");
  // Once any replica has data, the cluster exists: every replica rejoins, so one whose directory
  // was wiped rebuilds from the others instead of starting afresh as if new.
  const hasData = (id: string) => existsSync(join(dataDir, id)) && readdirSync(join(dataDir, id)).length > 0;
  const rejoin = ids.some(hasData);
  const children = ids.map((id) => {
    const directory = join(dataDir, id);
    const args = [...process.execArgv, process.argv[1] as string, "serve", "--id", id, "--members", members, "--data-dir", directory, "--log-level", "warn", ...(rejoin ? ["--rejoin"] : [])];
    return spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, SYNOD_LOCK_DEV_PARENT: String(process.pid) } });
  });
  await Promise.all(
    children.map(
      (child, index) =>
        new Promise<void>((resolveReady, reject) => {
          let output = "";
          child.stdout?.on("data", (chunk: Buffer) => {
            output += chunk.toString();
            if (output.includes(" ready on port ")) resolveReady();
          });
          child.once("exit", (code) => reject(new Error(`replica ${ids[index]} exited (${code}) before it was ready`)));
        }),
    ),
  );
  process.stdout.write(
    [
      "synod-lock: a 3-replica lock service is running on this machine.",
      `  endpoints: ${urls.join(",")}`,
      `  data:      ${dataDir}`,
      "  try:       SYNOD_ENDPOINTS=" + urls.join(",") + " synod-lock lock demo -- sh -c 'echo holding $SYNOD_LOCK_NAME with token $SYNOD_LOCK_TOKEN; sleep 2'",
      "             (in this repository: pnpm --filter @synod/app-lock cli lock demo -- ...)",
      "  Ctrl-C stops it.",
      "",
    ].join("\n"),
  );
  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      for (const child of children) child.kill("SIGTERM");
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    let exited = 0;
    for (const child of children) {
      child.once("exit", () => {
        exited += 1;
        if (!stopping) {
          process.stderr.write("synod-lock: a replica exited; stopping the others\n");
          stop();
        }
        if (exited === children.length) resolveExit(stopping ? 0 : 1);
      });
    }
  });
}

function clientFrom(flags: Flags): LockClient {
  return new LockClient({ ...clientTarget(flags, "ws://127.0.0.1:7501"), requestTimeoutMs: 1_000, operationTimeoutMs: 10_000 });
}

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

/** Runs COMMAND while the lock is held; resolves with the exit code to use. */
async function lockAndRun(client: LockClient, name: string, command: string[], flags: Flags): Promise<number> {
  const ttlMs = integer(flags, "ttl") ?? 10_000;
  const graceMs = integer(flags, "grace") ?? 2_000;
  const timeoutMs = integer(flags, "timeout");
  const session = await client.session({ ttlMs });
  const interrupted = new AbortController();
  const onSignal = () => interrupted.abort(new Error("interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let held: Awaited<ReturnType<typeof session.acquire>>;
  try {
    held = await session.acquire(name, {
      mode: flags.shared === true ? "shared" : "exclusive",
      wait: flags["no-wait"] !== true,
      signal: interrupted.signal,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
  } catch (error) {
    await session.close().catch(() => undefined);
    throw error;
  }
  const child = spawn(command[0] as string, command.slice(1), {
    stdio: "inherit",
    env: { ...process.env, SYNOD_LOCK_NAME: name, SYNOD_LOCK_TOKEN: String(held.token) },
  });
  const stopChild = (why: string) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.stderr.write(`synod-lock: ${why}; sending SIGTERM to the command (SIGKILL in ${graceMs} ms)\n`);
    child.kill("SIGTERM");
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }, graceMs).unref();
  };
  held.signal.addEventListener("abort", () => stopChild(`the lock ${name} may be lost (${(held.signal.reason as Error)?.message ?? "aborted"})`), { once: true });
  interrupted.signal.addEventListener("abort", () => stopChild("interrupted"), { once: true });
  const code = await new Promise<number>((resolve) => {
    child.once("error", (error) => {
      process.stderr.write(`synod-lock: cannot run ${command[0]}: ${error.message}\n`);
      resolve(127);
    });
    child.once("exit", (exitCode, signal) => resolve(exitCode ?? 128 + signalNumber(signal)));
  });
  // Release only a lock still ours; a lost one is someone else's now. Cut off from the cluster,
  // do not wait long for it: the session expires on its own.
  const lost = held.signal.aborted;
  const cleanUp = (async () => {
    if (!lost) await held.release().catch(() => undefined);
    await session.close().catch(() => undefined);
  })();
  await (lost ? Promise.race([cleanUp, new Promise((resolve) => setTimeout(resolve, graceMs).unref())]) : cleanUp);
  return code;
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return signal === null ? 0 : (numbers[signal] ?? 0);
}

async function main(argv: string[]): Promise<number> {
  const dash = argv.indexOf("--");
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const command = dash < 0 ? [] : argv.slice(dash + 1);
  const { values: flags, positionals } = parse(own);
  const verb = positionals[0];
  if (flags.help === true || verb === undefined || verb === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  if (verb === "serve") {
    await serve(flags);
    return -1;
  }
  if (verb === "dev") return dev(flags);
  if (verb === "members") {
    print(await membersCommand(positionals.slice(1), flags, clientTarget(flags, "ws://127.0.0.1:7501")));
    return 0;
  }
  const client = clientFrom(flags);
  try {
    switch (verb) {
      case "lock": {
        const name = positionals[1];
        if (name === undefined) throw new UsageError("missing NAME");
        if (command.length === 0) throw new UsageError("missing the command to run: synod-lock lock NAME -- COMMAND [ARGS...]");
        return await lockAndRun(client, name, command, flags);
      }
      case "status":
        print(positionals[1] === undefined ? await client.locks() : await client.lock(positionals[1]));
        return 0;
      case "sessions":
        print(await client.sessions());
        return 0;
      case "release": {
        const name = positionals[1];
        if (name === undefined) throw new UsageError("missing NAME");
        if (flags.force !== true) throw new UsageError("an operator release needs --force (a holder releases its own lock by ending its `lock` command)");
        if (flags.reason === undefined) throw new UsageError("--force needs --reason TEXT, recorded with the release");
        print({ released: await client.forceRelease(name, flags.reason, flags.session) });
        return 0;
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(verb)}`);
    }
  } finally {
    await client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  // A lock that was busy or a wait that timed out: exit 3, so scripts can tell it from a failure.
  (error: unknown) => exitOnError("synod-lock", error, (failed) => (failed instanceof LockWaitError ? 3 : undefined)),
);
