/**
 * Round trips between two processes on 127.0.0.1: the raw `ws` echo floor,
 * the Synod peer path and the Synod client path, for a heartbeat (~140 B)
 * and a 4 KiB accept, with 1 and 64 round trips in flight.
 *
 *   pnpm bench [--duration 1.5] [--warmup 0.4] [--reps 3] [--window 64]
 *              [--paths floor,peer,client (also: ws+json,ws+json-hand,ws+bin)] [--sizes small,4k] [--skip-codec] [--codec-ms 50]
 *              [--ab zero-mask,cork,zero-mask+cork]
 *
 * `--ab` adds, for each path, cases with the named fixes switched on in both
 * processes (see `setVariants` in shared.ts), interleaved with the plain
 * cases: an A/B of suggested src/ fixes measured in the same run.
 *
 * Every case runs `--reps` times, round-robin (rep 1 of every case, then rep
 * 2, ...), the floor of a size and window right before the Synod paths of the
 * same size and window; every rep is printed, then the medians. The codec
 * benchmark (`codec.ts`) runs at the end unless `--skip-codec`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Message } from "@synod/core";
import { build } from "esbuild";
import WebSocket from "ws";
import { PeerLink, SynodClient, SynodServer, jsonLogger, peerMessageFrame } from "../src/index.js";
import { runCodecBench } from "./codec.js";
import { decodeBinary, encodeBinary, validateByHand } from "./codecs.js";
import { BENCH_NODE, CHILD_NODE, CLUSTER_ID, SIZES, Samples, type Size, idOf, median, messageFor, opsBytes, pad, peerFrameText, scriptArguments, setVariants, VARIANTS, type Variant } from "./shared.js";

// ---------------------------------------------------------------- options

const { values: args } = parseArgs({
  args: scriptArguments(),
  options: {
    duration: { type: "string", default: "1.5" },
    warmup: { type: "string", default: "0.4" },
    reps: { type: "string", default: "3" },
    window: { type: "string", default: "64" },
    paths: { type: "string", default: "floor,peer,client" },
    sizes: { type: "string", default: "small,4k" },
    "skip-codec": { type: "boolean", default: false },
    "codec-ms": { type: "string", default: "50" },
    ab: { type: "string", default: "" },
  },
});
const DURATION_MS = Number(args.duration) * 1000;
const WARMUP_MS = Number(args.warmup) * 1000;
const REPS = Number(args.reps);
const WINDOW = Number(args.window);
const CODEC_MS = Number(args["codec-ms"]);
const PATH_NAMES = ["floor", "ws+json", "ws+json-hand", "ws+bin", "peer", "client"] as const;
type PathName = (typeof PATH_NAMES)[number];
const PATHS = (args.paths ?? "").split(",") as PathName[];
const RUN_SIZES = (args.sizes ?? "").split(",") as Size[];
if (
  ![DURATION_MS, WARMUP_MS, REPS, WINDOW, CODEC_MS].every((n) => Number.isFinite(n) && n > 0) ||
  PATHS.some((p) => !PATH_NAMES.includes(p)) ||
  RUN_SIZES.some((s) => !SIZES.includes(s))
) {
  throw new Error("bad arguments: --duration/--warmup in seconds, --reps n, --window n, --paths floor,ws+json,ws+json-hand,ws+bin,peer,client, --sizes small,4k, --codec-ms n");
}
const WINDOWS = [1, WINDOW];
/** `--ab zero-mask,cork,zero-mask+cork`: each item is one set of fixes switched on together. */
const AB = (args.ab ?? "")
  .split(",")
  .filter((item) => item !== "")
  .map((item) => item.split("+") as Variant[]);
if (AB.some((set) => set.some((v) => !VARIANTS.includes(v)))) throw new Error(`bad arguments: --ab takes sets of ${VARIANTS.join(", ")} joined by +, separated by commas`);
/** The plain case, then one case per set of fixes under test. */
const VARIANT_SETS: readonly (readonly Variant[])[] = [[], ...AB];
// The floor is the reference for the ratios: always measure it.
if (!PATHS.includes("floor")) PATHS.unshift("floor");

const SECRET = "bench-secret-0123456789abcdef0123456789abcdef";
const logger = jsonLogger({ level: "warn", fields: { process: "bench" } });
const here = dirname(fileURLToPath(import.meta.url));
const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- cleanup: the child, by its PID

const buildDirectory = mkdtempSync(join(tmpdir(), "synod-ws-bench-"));
let child: ChildProcess | undefined;
function killChild(signal: NodeJS.Signals): void {
  const pid = child?.pid;
  if (pid !== undefined && child?.exitCode === null && child.signalCode === null) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}
process.on("exit", () => {
  killChild("SIGKILL");
  rmSync(buildDirectory, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killChild("SIGKILL");
    process.exit(130);
  });
}

// ---------------------------------------------------------------- the child process

interface Ready {
  readonly rawPort: number;
  readonly synodPort: number;
}
const cpuWaiters: ((usage: NodeJS.CpuUsage) => void)[] = [];
let statsWaiter: ((stats: unknown) => void) | undefined;
let variantsWaiter: (() => void) | undefined;

async function startChild(parentPort: number): Promise<Ready> {
  const outfile = join(buildDirectory, "child.mjs");
  await build({
    entryPoints: [join(here, "child.ts")],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    conditions: ["@synod/source"],
    // Optional native helpers of ws are absent here, as in the bench process.
    external: ["bufferutil", "utf-8-validate"],
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    logLevel: "error",
  });
  const config = { parentUrl: `ws://127.0.0.1:${parentPort}`, parentNode: BENCH_NODE, secret: SECRET };
  const started = spawn(process.execPath, [outfile, JSON.stringify(config)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  child = started;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the bench child was not ready in 15 s")), 15_000);
    started.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the bench child exited (${code ?? signal})`));
    });
    started.on("message", (message: { type?: string; usage?: NodeJS.CpuUsage; rawPort?: number; synodPort?: number }) => {
      if (message.type === "ready") {
        clearTimeout(timer);
        resolve({ rawPort: message.rawPort ?? 0, synodPort: message.synodPort ?? 0 });
      } else if (message.type === "cpu" && message.usage !== undefined) {
        cpuWaiters.shift()?.(message.usage);
      } else if (message.type === "stats") {
        statsWaiter?.(message);
      } else if (message.type === "variants") {
        variantsWaiter?.();
      }
    });
  });
}

function childCpu(): Promise<NodeJS.CpuUsage> {
  return new Promise((resolve) => {
    cpuWaiters.push(resolve);
    child?.send({ type: "cpu" });
  });
}

/** Switches the A/B fixes in both processes. */
function useVariants(variants: readonly Variant[]): Promise<void> {
  setVariants(variants);
  return new Promise((resolve) => {
    variantsWaiter = resolve;
    child?.send({ type: "variants", variants });
  });
}

function childStats(): Promise<unknown> {
  return new Promise((resolve) => {
    statsWaiter = resolve;
    child?.send({ type: "stats" });
  });
}

// ---------------------------------------------------------------- the paths

/** Starts one round trip carrying `id`; the path calls `reply(id)` when it is back. */
interface Path {
  send(size: Size, id: number): void;
}
let reply: (id: number) => void = () => undefined;

async function connect(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  return socket;
}

/** Floor: a raw ws client; the child echoes every frame. Echoes come back in order, so ids are matched first in, first out. */
async function floorPath(port: number): Promise<Path & { close(): void }> {
  const socket = await connect(`ws://127.0.0.1:${port}/`);
  const texts: Record<Size, string> = { small: peerFrameText(messageFor("small", 1)), "4k": peerFrameText(messageFor("4k", 1)) };
  const inFlight: number[] = [];
  socket.on("message", () => reply(inFlight.shift() as number));
  return {
    send(size, id) {
      inFlight.push(id);
      socket.send(texts[size]);
    },
    close: () => socket.terminate(),
  };
}

/**
 * ws + codec, no Synod: the floor's sockets, but each side encodes the
 * message (JSON.stringify, or the binary sketch) and decodes + validates what
 * it receives (toString + JSON.parse + zod `peerMessageFrame` as PeerLink and
 * SynodServer do per message, or JSON.parse + the hand validator, or the
 * binary decoder).
 */
async function codecPath(port: number, codec: "json" | "json-hand" | "binary"): Promise<Path & { close(): void }> {
  const socket = await connect(`ws://127.0.0.1:${port}/${codec}`);
  const failed = (): void => {
    process.stderr.write("ws+codec: invalid reply\n");
  };
  if (codec === "json") {
    socket.on("message", (data) => {
      const frame = peerMessageFrame.safeParse(JSON.parse((data as Buffer).toString()));
      if (frame.success) reply(idOf(frame.data.m));
      else failed();
    });
  } else if (codec === "json-hand") {
    socket.on("message", (data) => {
      const message = validateByHand(JSON.parse((data as Buffer).toString()));
      if (message !== undefined) reply(idOf(message));
      else failed();
    });
  } else {
    socket.on("message", (data) => {
      const message = decodeBinary(data as Buffer);
      if (message !== undefined) reply(idOf(message));
      else failed();
    });
  }
  return {
    send(size, id) {
      const message = messageFor(size, id);
      if (codec !== "binary") socket.send(JSON.stringify({ v: 1, t: "msg", m: message }));
      else socket.send(encodeBinary(message) as Buffer);
    },
    close: () => socket.terminate(),
  };
}

/** Peer: PeerLink (HMAC handshake) → child's SynodServer → child's WsTransport → this process's SynodServer. */
function peerPath(childPort: number, server: { onMessage: (message: Message) => void }): Path & { link: PeerLink } {
  const link = new PeerLink({ self: BENCH_NODE, peer: CHILD_NODE, url: `ws://127.0.0.1:${childPort}`, clusterId: CLUSTER_ID, secret: SECRET, logger });
  server.onMessage = (message) => reply(idOf(message));
  return {
    link,
    send(size, id) {
      link.send(messageFor(size, id));
    },
  };
}

/** Client: SynodClient.read(query) → child's /client, whose handler answers with the query. */
function clientPath(childPort: number): Path & { client: SynodClient } {
  const client = new SynodClient({ urls: [`ws://127.0.0.1:${childPort}`] });
  const failed = (error: unknown): void => {
    process.stderr.write(`client read failed: ${(error as Error).message}\n`);
  };
  return {
    client,
    send(size, id) {
      client.read(messageFor(size, id)).then((result) => reply(idOf(result)), failed);
    },
  };
}

// ---------------------------------------------------------------- one measurement

interface Result {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  /** CPU (user + system) of the bench process per round trip, µs. */
  readonly cpuBench: number;
  /** CPU of the child per round trip, µs. */
  readonly cpuChild: number;
}

let nextId = 1;

/**
 * Keeps `window` round trips in flight: warm-up, then `durationMs` measured,
 * then stops issuing and waits for the stragglers. Throughput counts the
 * round trips that complete inside the measured interval, latency is theirs.
 */
async function measure(path: Path, size: Size, window: number, warmupMs: number, durationMs: number): Promise<Result> {
  const starts = new Map<number, number>();
  const samples = new Samples();
  let measuring = false;
  let stopping = false;
  let completed = 0;
  let strays = 0;
  let drained: () => void = () => undefined;
  const issue = (): void => {
    const id = nextId++;
    starts.set(id, now());
    path.send(size, id);
  };
  reply = (id) => {
    const end = now();
    const start = starts.get(id);
    if (start === undefined) {
      strays += 1;
      return;
    }
    starts.delete(id);
    if (measuring) {
      samples.push((end - start) * 1000);
      completed += 1;
    }
    if (!stopping) issue();
    else if (starts.size === 0) drained();
  };
  for (let index = 0; index < window; index += 1) issue();
  await sleep(warmupMs);
  const childBefore = childCpu();
  const cpuBefore = process.cpuUsage();
  const begin = now();
  measuring = true;
  await sleep(durationMs);
  measuring = false;
  const elapsed = now() - begin;
  const cpu = process.cpuUsage(cpuBefore);
  const childAfter = await childCpu();
  const childStart = await childBefore;
  stopping = true;
  if (starts.size > 0) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${starts.size} round trips never came back`)), 10_000);
      drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  if (strays > 0) throw new Error(`${strays} replies matched no round trip in flight`);
  if (completed === 0) throw new Error("no round trip completed in the measured interval");
  return {
    perSecond: (completed * 1000) / elapsed,
    p50: samples.percentile(50),
    p99: samples.percentile(99),
    cpuBench: (cpu.user + cpu.system) / completed,
    cpuChild: (childAfter.user - childStart.user + childAfter.system - childStart.system) / completed,
  };
}

// ---------------------------------------------------------------- main

interface Case {
  readonly path: PathName;
  readonly variants: readonly Variant[];
  readonly size: Size;
  readonly window: number;
  readonly results: Result[];
}

const fmt = (value: number, digits = 0): string => (Number.isFinite(value) ? value.toFixed(digits) : "-");

const caseName = (c: Case): string => [c.path, ...c.variants].join("+");
const isPlainFloor = (c: Case): boolean => c.path === "floor" && c.variants.length === 0;

function row(c: Case, r: Result, floor: Result | undefined, label: string): string {
  const ratioRate = floor === undefined || isPlainFloor(c) ? "" : `${fmt(r.perSecond / floor.perSecond, 2)}`;
  const ratioP50 = floor === undefined || isPlainFloor(c) ? "" : `${fmt(r.p50 / floor.p50, 2)}`;
  return [
    label.padEnd(6),
    caseName(c).padEnd(PATH_WIDTH),
    c.size.padEnd(6),
    pad(c.window, 4),
    pad(fmt(r.perSecond), 9),
    pad(fmt(r.p50), 8),
    pad(fmt(r.p99), 8),
    pad(ratioRate, 9),
    pad(ratioP50, 9),
    pad(fmt(r.cpuBench, 1), 10),
    pad(fmt(r.cpuChild, 1), 10),
  ].join(" ");
}
const PATH_WIDTH = Math.max(7, ...PATHS.flatMap((path) => VARIANT_SETS.map((v) => [path, ...v].join("+").length)));
const HEADER = [
  "rep".padEnd(6),
  "path".padEnd(PATH_WIDTH),
  "size".padEnd(6),
  pad("win", 4),
  pad("rt/s", 9),
  pad("p50 µs", 8),
  pad("p99 µs", 8),
  pad("rt/s÷flr", 9),
  pad("p50÷flr", 9),
  pad("cpu µs/rt", 10),
  pad("child µs", 10),
].join(" ");

async function main(): Promise<void> {
  const started = now();
  // Where the bench process's SynodServer hands peer messages: the peer path sets it.
  const sink = { onMessage: (_message: Message): void => undefined };
  const benchServer = new SynodServer({
    self: BENCH_NODE,
    clusterId: CLUSTER_ID,
    host: "127.0.0.1",
    port: 0,
    peers: [BENCH_NODE, CHILD_NODE],
    secret: SECRET,
    logger,
    onPeerMessage: (message) => sink.onMessage(message),
  });
  const benchPort = await benchServer.listen();
  const ready = await startChild(benchPort);

  const floor = await floorPath(ready.rawPort);
  const peer = peerPath(ready.synodPort, sink);
  const client = clientPath(ready.synodPort);
  const json = await codecPath(ready.rawPort, "json");
  const jsonHand = await codecPath(ready.rawPort, "json-hand");
  const binary = await codecPath(ready.rawPort, "binary");
  const paths: Record<PathName, Path> = { floor, "ws+json": json, "ws+json-hand": jsonHand, "ws+bin": binary, peer, client };

  const frameBytes = (size: Size): number => Buffer.byteLength(peerFrameText(messageFor(size, 123_456)));
  const requestBytes = (size: Size): number => Buffer.byteLength(JSON.stringify({ v: 1, t: "request", id: 123, body: { kind: "read", query: messageFor(size, 123_456) } }));
  console.log(`transport-ws round trips, 2 processes on 127.0.0.1 — Node ${process.version}, ${cpus().length} CPUs, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(
    `small: heartbeat, peer frame ${frameBytes("small")} B, client request ${requestBytes("small")} B; ` +
      `4k: accept of 16 commands with ${opsBytes()} B of ops, peer frame ${frameBytes("4k")} B, client request ${requestBytes("4k")} B`,
  );
  if (AB.length > 0) console.log(`A/B: ${AB.map((set) => `+${set.join("+")}`).join(", ")}: the same path with that fix on in both processes (see setVariants in bench/shared.ts); ÷flr is always against the plain floor`);
  console.log(`warm-up ${WARMUP_MS} ms + ${DURATION_MS} ms measured per rep, ${REPS} reps round-robin, windows ${WINDOWS.join(" and ")}`);
  console.log("cpu µs/rt: bench process (user+system) per round trip; child µs: the echoing process; ÷flr: against the floor of the same size and window\n");

  // Connect everything and let the JIT settle, untimed.
  for (const name of PATHS) for (const size of RUN_SIZES) await measure(paths[name], size, 1, 300, 100);

  const cases: Case[] = [];
  for (const size of RUN_SIZES) for (const window of WINDOWS) for (const variants of VARIANT_SETS) for (const path of PATHS) cases.push({ path, variants, size, window, results: [] });
  const plainFloor = (c: Case): Case | undefined => cases.find((f) => isPlainFloor(f) && f.size === c.size && f.window === c.window);

  console.log(HEADER);
  for (let rep = 0; rep < REPS; rep += 1) {
    for (const c of cases) {
      if (AB.length > 0) await useVariants(c.variants);
      const result = await measure(paths[c.path], c.size, c.window, WARMUP_MS, DURATION_MS);
      c.results.push(result);
      console.log(row(c, result, plainFloor(c)?.results[rep], `#${rep + 1}`));
    }
    if (AB.length > 0) await useVariants([]);
  }

  const medianOf = (c: Case): Result => ({
    perSecond: median(c.results.map((r) => r.perSecond)),
    p50: median(c.results.map((r) => r.p50)),
    p99: median(c.results.map((r) => r.p99)),
    cpuBench: median(c.results.map((r) => r.cpuBench)),
    cpuChild: median(c.results.map((r) => r.cpuChild)),
  });
  console.log(`\nmedians of ${REPS} reps (ratios are median ÷ median of the floor):`);
  console.log(HEADER);
  for (const c of cases) {
    const floorCase = plainFloor(c);
    console.log(row(c, medianOf(c), floorCase === undefined ? undefined : medianOf(floorCase), "median"));
  }

  const stats = (await childStats()) as { server: { badFrames: number }; transport: Record<string, { dropped: number }> };
  const droppedHere = peer.link.statistics.dropped;
  const droppedThere = Object.values(stats.transport).reduce((total, link) => total + link.dropped, 0);
  console.log(
    `\nchecks: peer messages dropped (queue full) here ${droppedHere}, in the child ${droppedThere}; bad frames here ${benchServer.statistics.badFrames}, in the child ${stats.server.badFrames}`,
  );
  console.log(`round trips took ${((now() - started) / 1000).toFixed(1)} s`);

  floor.close();
  json.close();
  jsonHand.close();
  binary.close();
  peer.link.close();
  await client.client.close();
  await benchServer.close();
  const exited = new Promise<void>((resolve) => child?.once("exit", () => resolve()));
  killChild("SIGTERM");
  await Promise.race([exited, sleep(2_000)]);

  if (!args["skip-codec"]) {
    console.log("");
    await runCodecBench({ budgetMs: CODEC_MS, reps: 3 });
  }
  console.log(`\ntotal ${((now() - started) / 1000).toFixed(1)} s`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  },
);
