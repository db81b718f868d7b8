import { isIP } from "node:net";
import { FAILURE_POINTS, PLANTED_BUGS } from "@synod/core";
import { z } from "zod";

const duration = z.number().int().positive();

/**
 * A replica's configuration, validated at start-up: every field's error says
 * which field and why. Members' URLs are where peers and clients reach them
 * (`ws://host:port`, or `wss://` with TLS).
 */
export const serverConfigSchema = z
  .object({
    /** This replica's id; must be one of `members`. */
    id: z.string().min(1).max(256),
    /** Names the cluster; peers of another cluster are refused. */
    clusterId: z.string().min(1).max(256).default("synod"),
    members: z
      .array(z.object({ id: z.string().min(1).max(256), url: z.string().regex(/^wss?:\/\/[^/]+$/, "a member url is ws://host:port or wss://host:port") }))
      .min(1),
    /** Where to listen; defaults to the host and port of this replica's own member URL. */
    listen: z.object({ host: z.string().min(1), port: z.number().int().min(0).max(65535) }).optional(),
    /** The data directory (file storage). */
    dataDir: z.string().min(1),
    /** This replica was a member before: an empty data directory is then a wiped one, not a new replica. */
    rejoin: z.boolean().default(false),
    /**
     * This replica joins a running cluster: `members` are the replicas to
     * reach (and itself); it votes in nothing until an operator adds it
     * (`members add`) and the log or a snapshot tells it the configuration.
     * Keep it on when the joined replica restarts.
     */
    join: z.boolean().default(false),
    tickMs: duration.default(50),
    electionTicks: duration.default(10),
    heartbeatTicks: duration.default(2),
    /**
     * Master lease in milliseconds (default: the minimum election timeout,
     * electionTicks × tickMs); 0 turns leases off and every linearizable read
     * takes a read-index round. Leases assume that no replica's clock runs
     * faster or slower than real time by more than `maxClockDrift`: the
     * leader serves reads from its own state for leaseMs × (1 − drift) /
     * (1 + drift) after a quorum answered its heartbeat. Same value on every
     * replica of a cluster.
     */
    leaseMs: z.number().int().nonnegative().optional(),
    /**
     * Test-only: crash (SIGKILL itself) the `after`-th time the replica passes
     * `point` (Paxos Made Live §6.3 failure points; see `FAILURE_POINTS`).
     */
    crashAt: z.object({ point: z.enum(FAILURE_POINTS), after: z.number().int().min(1).default(1) }).optional(),
    /**
     * Test-only: once this replica has applied this slot, its state machine
     * is reset to empty behind the log's back, as a bug or a bit flip in
     * memory would make it diverge; the consistency checks must find it.
     */
    injectDivergenceAt: z.number().int().nonnegative().optional(),
    /**
     * Test-only: known protocol bugs planted in this replica (see
     * `PLANTED_BUGS`), so that a fault campaign on real processes can show
     * it catches them. Never in production.
     */
    plantedBugs: z.array(z.enum(PLANTED_BUGS)).default([]),
    /**
     * Test-only: known bugs planted in the application on top (its own list,
     * `appBugs` of `startServer`'s options; a name the application does not
     * know is refused). Never in production.
     */
    appBugs: z.array(z.string().regex(/^[a-z][a-z-]*$/).max(64)).default([]),
    /**
     * Test-only: the storage notes after every fsync how much of its log is
     * durable, so that a fault campaign can emulate a power cut on a stopped
     * replica (`losePower` in @synod/storage-fs). Never in production.
     */
    durabilityJournal: z.boolean().default(false),
    /** A leader whose disk writes take this long (median of its last eight) hands over to a follower (default: electionTicks × tickMs; 0 disables). */
    maxPersistMs: z.number().int().nonnegative().optional(),
    /** A leader whose applying of chosen slots takes this long (median of its last eight) hands over (default: electionTicks × tickMs; 0 disables). */
    maxApplyMs: z.number().int().nonnegative().optional(),
    /**
     * What to do when the data directory is found corrupted (a checksum
     * fails) or wiped (empty, with `rejoin`): "rebuild" (default) moves the
     * damaged files aside (`damaged-*`), starts empty and rebuilds from the
     * other replicas, voting in nothing until it has (Paxos Made Live §5.1);
     * "stop" refuses to start.
     */
    onCorruption: z.enum(["rebuild", "stop"]).default("rebuild"),
    /**
     * Runtime consistency checks: the leader puts a check in the log this
     * often (ms; 0 disables); every replica digests its state there, and a
     * replica whose digest differs from a majority's raises the alarm
     * everywhere and rebuilds itself from the others.
     */
    checkEveryMs: z.number().int().nonnegative().default(10_000),
    /** The clock-rate bound leases rest on, as a fraction (default 0.01 = 1 %). */
    maxClockDrift: z.number().min(0).max(0.5).default(0.01),
    sessionTtlMs: duration.default(60_000),
    snapshotEverySlots: z.number().int().nonnegative().default(10_000),
    snapshotTailSlots: z.number().int().nonnegative().default(1_000),
    /** Also snapshot after this many (estimated) bytes of applied log (0 disables). */
    snapshotEveryBytes: z.number().int().nonnegative().default(64 * 1024 * 1024),
    /** Bytes per chunk when this replica fetches a snapshot (at most 4 MiB). */
    snapshotChunkBytes: z
      .number()
      .int()
      .min(1)
      .max(4 * 1024 * 1024)
      .default(1024 * 1024),
    /** The cluster secret peers authenticate with (HMAC challenge). Required unless the whole cluster is on loopback. */
    secret: z.string().min(16, "the cluster secret must be at least 16 characters").optional(),
    /** Bearer tokens clients must present; none configured lets any client in. */
    clientTokens: z.array(z.string().min(16, "a client token must be at least 16 characters")).optional(),
    tls: z
      .object({
        cert: z.string().min(1),
        key: z.string().min(1),
        /** CA for verifying peers' and clients' certificates (mutual TLS) and for trusting peers when dialling. */
        ca: z.string().min(1).optional(),
        requireClientCertificate: z.boolean().default(false),
      })
      .optional(),
    logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
  })
  .superRefine((config, context) => {
    const ids = config.members.map((member) => member.id);
    if (!ids.includes(config.id)) context.addIssue({ code: "custom", path: ["id"], message: `${config.id} is not among the members (${ids.join(", ")})` });
    if (new Set(ids).size !== ids.length) context.addIssue({ code: "custom", path: ["members"], message: "member ids must be distinct" });
    if (config.heartbeatTicks >= config.electionTicks) {
      context.addIssue({ code: "custom", path: ["heartbeatTicks"], message: "heartbeatTicks must be below electionTicks" });
    }
    const tlsUrls = config.members.filter((member) => member.url.startsWith("wss://")).length;
    if (tlsUrls > 0 && config.tls === undefined) context.addIssue({ code: "custom", path: ["tls"], message: "wss:// members need tls certificates" });
    if (config.secret === undefined) {
      // Secure by default: without a secret, peers are not authenticated, which is only acceptable on loopback.
      const hosts = [...config.members.map((member) => new URL(member.url).hostname), config.listen?.host].filter((host): host is string => host !== undefined);
      const exposed = hosts.filter((host) => !isLoopback(host));
      if (exposed.length > 0) {
        context.addIssue({
          code: "custom",
          path: ["secret"],
          message: `a cluster secret is required when any address is not loopback (${exposed.join(", ")}); set "secret" (and "tls")`,
        });
      }
    }
  });

export type ServerConfig = z.infer<typeof serverConfigSchema>;
export type ServerConfigInput = z.input<typeof serverConfigSchema>;

/** A typed configuration error that lists every problem with its field. */
export class ConfigError extends Error {
  readonly code = "INVALID_CONFIG";
  constructor(readonly issues: readonly string[]) {
    super(`invalid configuration:\n  ${issues.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

export function parseServerConfig(input: unknown): ServerConfig {
  const result = serverConfigSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join(".") || "(config)"}: ${issue.message}`));
  }
  return result.data;
}

export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "");
  if (bare === "localhost" || bare === "::1") return true;
  return isIP(bare) === 4 && bare.startsWith("127.");
}
