import { readFileSync } from "node:fs";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { ConfigError } from "./config.js";

/** A command-line mistake: the CLIs print it with a hint and exit 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The `serve` flags every Synod server CLI takes (for `node:util` `parseArgs`). */
export const SERVE_FLAGS = {
  config: { type: "string" },
  id: { type: "string" },
  members: { type: "string" },
  "data-dir": { type: "string" },
  listen: { type: "string" },
  "cluster-id": { type: "string" },
  secret: { type: "string" },
  rejoin: { type: "boolean" },
  join: { type: "boolean" },
  "snapshot-every-slots": { type: "string" },
  "snapshot-tail-slots": { type: "string" },
  "snapshot-every-bytes": { type: "string" },
  "snapshot-chunk-bytes": { type: "string" },
  "lease-ms": { type: "string" },
  "crash-at": { type: "string" },
  "inject-divergence-at": { type: "string" },
  "plant-bug": { type: "string", multiple: true },
  "plant-app-bug": { type: "string", multiple: true },
  "durability-journal": { type: "boolean" },
  "max-persist-ms": { type: "string" },
  "max-apply-ms": { type: "string" },
  "max-clock-drift": { type: "string" },
  "on-corruption": { type: "string" },
  "check-every-ms": { type: "string" },
  "tick-ms": { type: "string" },
  "log-level": { type: "string" },
} as const;

/** What `parseArgs` gives for `SERVE_FLAGS` (and possibly more). */
export interface ServeFlagValues {
  readonly config?: string | undefined;
  readonly id?: string | undefined;
  readonly members?: string | undefined;
  readonly "data-dir"?: string | undefined;
  readonly listen?: string | undefined;
  readonly "cluster-id"?: string | undefined;
  readonly secret?: string | undefined;
  readonly rejoin?: boolean | undefined;
  readonly join?: boolean | undefined;
  readonly "snapshot-every-slots"?: string | undefined;
  readonly "snapshot-tail-slots"?: string | undefined;
  readonly "snapshot-every-bytes"?: string | undefined;
  readonly "snapshot-chunk-bytes"?: string | undefined;
  readonly "lease-ms"?: string | undefined;
  readonly "crash-at"?: string | undefined;
  readonly "inject-divergence-at"?: string | undefined;
  readonly "plant-bug"?: readonly string[] | undefined;
  readonly "plant-app-bug"?: readonly string[] | undefined;
  readonly "durability-journal"?: boolean | undefined;
  readonly "max-persist-ms"?: string | undefined;
  readonly "max-apply-ms"?: string | undefined;
  readonly "max-clock-drift"?: string | undefined;
  readonly "on-corruption"?: string | undefined;
  readonly "check-every-ms"?: string | undefined;
  readonly "tick-ms"?: string | undefined;
  readonly "log-level"?: string | undefined;
}

/** A non-negative integer flag, or a `UsageError` naming it. */
type FlagOptions = NonNullable<ParseArgsConfig["options"]>;

/** What `parseFlags` returns for these options. */
export type ParsedFlags<Options extends FlagOptions> = ReturnType<typeof parseArgs<{ args: string[]; options: Options; allowPositionals: true; strict: true }>>;

/** `parseArgs` with positionals, strict: an unknown or malformed flag is a `UsageError` (exit 2). */
export function parseFlags<const Options extends FlagOptions>(argv: string[], options: Options): ParsedFlags<Options> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function integerFlag(name: string, given: string | boolean | readonly string[] | undefined): number | undefined {
  // A flag given more than once (where repeats are allowed) counts its last value.
  const text = Array.isArray(given) ? given.at(-1) : given;
  if (text === undefined) return undefined;
  if (typeof text !== "string" || !/^\d+$/.test(text)) throw new UsageError(`--${name} takes a non-negative integer, not ${JSON.stringify(text)}`);
  return Number(text);
}

/**
 * Builds a server configuration from `--config FILE` (JSON) and the flags,
 * flags winning; `SYNOD_SECRET` stands in for `--secret`. Validation is the
 * server's (`parseServerConfig` lists every bad field); this only reports
 * flags it cannot read.
 */
export function configFromServeFlags(flags: ServeFlagValues): Record<string, unknown> {
  let file: Record<string, unknown> = {};
  if (flags.config !== undefined) {
    try {
      file = JSON.parse(readFileSync(flags.config, "utf8"));
    } catch (error) {
      throw new UsageError(`cannot read the configuration ${flags.config}: ${(error as Error).message}`);
    }
  }
  const config: Record<string, unknown> = { ...file };
  if (flags.id !== undefined) config.id = flags.id;
  if (flags.members !== undefined) {
    config.members = flags.members.split(",").map((entry) => {
      const at = entry.indexOf("=");
      if (at <= 0) throw new UsageError(`--members takes ID=URL,..., not ${JSON.stringify(entry)}`);
      return { id: entry.slice(0, at), url: entry.slice(at + 1) };
    });
  }
  if (flags["data-dir"] !== undefined) config.dataDir = flags["data-dir"];
  if (flags.listen !== undefined) {
    const match = /^(.+):(\d+)$/.exec(flags.listen);
    if (match === null) throw new UsageError(`--listen takes HOST:PORT, not ${JSON.stringify(flags.listen)}`);
    config.listen = { host: match[1], port: Number(match[2]) };
  }
  if (flags["cluster-id"] !== undefined) config.clusterId = flags["cluster-id"];
  const secret = flags.secret ?? process.env.SYNOD_SECRET;
  if (secret !== undefined) config.secret = secret;
  if (flags.rejoin === true) config.rejoin = true;
  if (flags.join === true) config.join = true;
  const snapshotEverySlots = integerFlag("snapshot-every-slots", flags["snapshot-every-slots"]);
  if (snapshotEverySlots !== undefined) config.snapshotEverySlots = snapshotEverySlots;
  const snapshotTailSlots = integerFlag("snapshot-tail-slots", flags["snapshot-tail-slots"]);
  if (snapshotTailSlots !== undefined) config.snapshotTailSlots = snapshotTailSlots;
  const snapshotEveryBytes = integerFlag("snapshot-every-bytes", flags["snapshot-every-bytes"]);
  if (snapshotEveryBytes !== undefined) config.snapshotEveryBytes = snapshotEveryBytes;
  const snapshotChunkBytes = integerFlag("snapshot-chunk-bytes", flags["snapshot-chunk-bytes"]);
  if (snapshotChunkBytes !== undefined) config.snapshotChunkBytes = snapshotChunkBytes;
  const crashAt = flags["crash-at"];
  if (crashAt !== undefined) {
    const match = /^([a-z-]+)(?::(\d+))?$/.exec(crashAt);
    if (match === null) throw new UsageError(`--crash-at takes POINT or POINT:N, not ${JSON.stringify(crashAt)}`);
    config.crashAt = { point: match[1], ...(match[2] === undefined ? {} : { after: Number(match[2]) }) };
  }
  if (flags["plant-bug"] !== undefined) config.plantedBugs = [...flags["plant-bug"]];
  if (flags["plant-app-bug"] !== undefined) config.appBugs = [...flags["plant-app-bug"]];
  if (flags["durability-journal"] === true) config.durabilityJournal = true;
  const injectDivergenceAt = integerFlag("inject-divergence-at", flags["inject-divergence-at"]);
  if (injectDivergenceAt !== undefined) config.injectDivergenceAt = injectDivergenceAt;
  const maxPersistMs = integerFlag("max-persist-ms", flags["max-persist-ms"]);
  if (maxPersistMs !== undefined) config.maxPersistMs = maxPersistMs;
  const maxApplyMs = integerFlag("max-apply-ms", flags["max-apply-ms"]);
  if (maxApplyMs !== undefined) config.maxApplyMs = maxApplyMs;
  const leaseMs = integerFlag("lease-ms", flags["lease-ms"]);
  if (leaseMs !== undefined) config.leaseMs = leaseMs;
  const drift = flags["max-clock-drift"];
  if (drift !== undefined) {
    if (!/^(0|0?\.\d+)$/.test(drift)) throw new UsageError(`--max-clock-drift takes a fraction such as 0.01, not ${JSON.stringify(drift)}`);
    config.maxClockDrift = Number(drift);
  }
  if (flags["on-corruption"] !== undefined) config.onCorruption = flags["on-corruption"];
  const checkEveryMs = integerFlag("check-every-ms", flags["check-every-ms"]);
  if (checkEveryMs !== undefined) config.checkEveryMs = checkEveryMs;
  const tickMs = integerFlag("tick-ms", flags["tick-ms"]);
  if (tickMs !== undefined) config.tickMs = tickMs;
  if (flags["log-level"] !== undefined) config.logLevel = flags["log-level"];
  return config;
}

/** The flags every Synod client command takes. */
export const CLIENT_FLAGS = {
  endpoints: { type: "string" },
  token: { type: "string" },
} as const;

/**
 * The cluster a client command talks to: `--endpoints URL,...` (or
 * `SYNOD_ENDPOINTS`, or `defaultEndpoint`) and `--token` (or `SYNOD_TOKEN`).
 */
export function clientTarget(flags: { readonly endpoints?: string | undefined; readonly token?: string | undefined }, defaultEndpoint: string): { urls: string[]; token?: string } {
  const urls = (flags.endpoints ?? process.env.SYNOD_ENDPOINTS ?? defaultEndpoint).split(",").filter((url) => url !== "");
  if (urls.length === 0) throw new UsageError("--endpoints names no endpoint");
  for (const url of urls) if (!/^wss?:\/\/[^/]+$/.test(url)) throw new UsageError(`an endpoint is ws://host:port or wss://host:port, not ${JSON.stringify(url)}`);
  const token = flags.token ?? process.env.SYNOD_TOKEN;
  return token === undefined ? { urls } : { urls, token };
}

/**
 * Prints why a CLI failed and exits: 2 for a usage or configuration mistake
 * (with a pointer to `--help`), `exitCodeOf(error)` when it names one, 1 for
 * any error the cluster reported (printed as `CODE: message`), 1 with the
 * stack for anything else.
 */
export function exitOnError(program: string, error: unknown, exitCodeOf: (error: unknown) => number | undefined = () => undefined): never {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (error instanceof UsageError) {
    process.stderr.write(`${program}: ${error.message}\n(${program} --help lists the commands)\n`);
    process.exit(2);
  }
  if (error instanceof ConfigError) {
    process.stderr.write(`${program}: ${error.message}\n`);
    process.exit(2);
  }
  if (typeof code === "string" && typeof message === "string") {
    process.stderr.write(`${program}: ${code}: ${message}\n`);
    process.exit(exitCodeOf(error) ?? 1);
  }
  process.stderr.write(`${program}: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
}
