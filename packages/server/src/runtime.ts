import { readFileSync, writeSync } from "node:fs";
import { type FailureHooks, type FailurePoint, type StateMachine, SynodNode, collectChunks, snapshotChunks } from "@synod/core";
import { FileStorage } from "@synod/storage-fs";
import { type ClientHandler, type Logger, SynodServer, WsTransport, jsonLogger, nodeClientHandler } from "@synod/transport-ws";
import { ConfigError, type ServerConfig, parseServerConfig } from "./config.js";
import { withMembership } from "./membership-admin.js";
import { MetricsRegistry } from "./metrics.js";
import { peersToReach } from "./peers.js";

/** A running replica: the Paxos node, its listener, transport and storage. */
export interface RunningServer<Op, Test, Result, Query, QueryResult> {
  readonly config: ServerConfig;
  readonly node: SynodNode<Op, Test, Result, Query, QueryResult>;
  readonly server: SynodServer;
  readonly transport: WsTransport;
  readonly storage: FileStorage;
  readonly logger: Logger;
  /** The port actually bound (differs from the config when it asked for 0). */
  readonly port: number;
  /** Served as Prometheus text on `GET /metrics`; applications add their own. */
  readonly metrics: MetricsRegistry;
  /** Stops accepting, fails what is pending, lets in-flight writes finish, closes sockets and files. */
  stop(): Promise<void>;
}

/**
 * Starts one replica from a configuration (validated; a `ConfigError` lists
 * every bad field): opens and recovers its data directory, connects to its
 * peers, listens for peers and clients, and joins the cluster.
 */
export async function startServer<Op, Test, Result, Query, QueryResult>(
  input: unknown,
  stateMachine: StateMachine<Op, Test, Result, Query, QueryResult>,
  options: {
    logger?: Logger;
    /**
     * Builds what answers clients (default: `nodeClientHandler`, the generic
     * one). An application puts its own in front to validate requests at the
     * boundary and to serve streams.
     */
    clients?: (node: SynodNode<Op, Test, Result, Query, QueryResult>, endpointOf: (id: string) => string | undefined, metrics: MetricsRegistry) => ClientHandler;
    /** Test-only: the bugs this application can plant in itself (`appBugs` in the configuration names some of them). */
    appBugs?: readonly string[];
  } = {},
): Promise<RunningServer<Op, Test, Result, Query, QueryResult>> {
  const config = parseServerConfig(input);
  const unknownBugs = config.appBugs.filter((bug) => !(options.appBugs ?? []).includes(bug));
  if (unknownBugs.length > 0) throw new ConfigError(unknownBugs.map((bug) => `appBugs: this application plants no bug ${JSON.stringify(bug)} (it knows: ${(options.appBugs ?? []).join(", ") || "none"})`));
  const logger = options.logger ?? jsonLogger({ level: config.logLevel, fields: { node: config.id } });
  const self = config.members.find((member) => member.id === config.id) as { id: string; url: string };
  const ownUrl = new URL(self.url);
  const listen = config.listen ?? { host: ownUrl.hostname.replace(/^\[|\]$/g, ""), port: Number(ownUrl.port) };
  const tls =
    config.tls === undefined
      ? undefined
      : {
          cert: readFileSync(config.tls.cert),
          key: readFileSync(config.tls.key),
          ...(config.tls.ca === undefined ? {} : { ca: readFileSync(config.tls.ca) }),
        };

  const storage = await FileStorage.open(config.dataDir, { nodeId: config.id, expectExisting: config.rejoin, onCorruption: config.onCorruption === "rebuild" ? "rebuild" : "throw", durabilityJournal: config.durabilityJournal });
  if (storage.recovery.tornTail !== undefined) logger.warn("cut off a torn tail of the log", { ...storage.recovery.tornTail });
  const lost = storage.recovery.rebuild;
  if (lost !== undefined) {
    logger.error("storage lost: rebuilding from the other replicas, voting in nothing until then", {
      reason: lost.reason,
      file: lost.file,
      offset: lost.offset,
      ...(lost.movedTo === undefined ? {} : { movedTo: lost.movedTo }),
    });
  }
  logger.info("storage opened", {
    dataDir: config.dataDir,
    fresh: storage.recovery.fresh,
    commits: storage.recovery.commits,
    records: storage.recovery.records,
    incarnation: storage.identity.incarnation,
  });

  const transport = new WsTransport({
    self: config.id,
    clusterId: config.clusterId,
    peers: config.members,
    secret: config.secret,
    logger,
    ...(tls === undefined ? {} : { tls: { ...(tls.ca === undefined ? {} : { ca: tls.ca }), cert: tls.cert, key: tls.key } }),
  });
  const node = new SynodNode({
    id: config.id,
    // A joining replica starts from no configuration: it learns the real one from the log or a snapshot.
    voters: config.join ? [] : config.members.map((member) => member.id),
    ...(config.join ? {} : { endpoints: Object.fromEntries(config.members.map((member) => [member.id, member.url])) }),
    storage,
    transport,
    stateMachine,
    tickMs: config.tickMs,
    replica: {
      electionTicks: config.electionTicks,
      heartbeatTicks: config.heartbeatTicks,
      maxClockDrift: config.maxClockDrift,
      ...(config.leaseMs === undefined ? {} : { leaseMs: config.leaseMs }),
    },
    sessionTtlMs: config.sessionTtlMs,
    snapshotEverySlots: config.snapshotEverySlots,
    snapshotTailSlots: config.snapshotTailSlots,
    snapshotEveryBytes: config.snapshotEveryBytes,
    snapshotChunkBytes: config.snapshotChunkBytes,
    ...(config.crashAt === undefined ? {} : { failureHooks: crashHooks(config.crashAt, config.id) }),
    ...(config.maxPersistMs === undefined ? {} : { maxPersistMs: config.maxPersistMs }),
    ...(config.maxApplyMs === undefined ? {} : { maxApplyMs: config.maxApplyMs }),
    checkEveryMs: config.checkEveryMs,
    ...(config.plantedBugs.length === 0 ? {} : { bugs: new Set(config.plantedBugs) }),
  });
  const urls = new Map(config.members.map((member) => [member.id, member.url]));
  const endpointOf = (id: string) => urls.get(id);
  const metrics = new MetricsRegistry();
  const leaderChanges = metrics.counter("synod_leader_changes_total", "Times this replica saw the leader change.");
  metrics.gauge("synod_is_leader", "1 while this replica leads.", () => (node.status().role === "leader" ? 1 : 0));
  metrics.gauge("synod_applied_slot", "The last log slot applied here.", () => node.status().appliedThrough);
  metrics.gauge("synod_log_last_slot", "The last log slot this replica holds.", () => node.status().lastSlot);
  metrics.gauge("synod_rebuilding", "1 while this replica rebuilds lost state and votes in nothing.", () => (node.status().rebuilding ? 1 : 0));
  const rebuilds = metrics.counter("synod_rebuilds_total", "Rebuilds of lost or diverged state this replica started.");
  const checks = metrics.counter("synod_consistency_checks_total", "Consistency checks this replica digested its state for.");
  const divergences = metrics.counter("synod_divergences_total", "Replicas (this one or others) consistency checks found diverged.");
  const clients = withMembership(options.clients?.(node, endpointOf, metrics) ?? nodeClientHandler(node as unknown as SynodNode, endpointOf), node, endpointOf);
  const server = new SynodServer({
    self: config.id,
    clusterId: config.clusterId,
    host: listen.host,
    port: listen.port,
    peers: config.members.map((member) => member.id),
    secret: config.secret,
    ...(config.clientTokens === undefined ? {} : { clientTokens: config.clientTokens }),
    ...(tls === undefined ? {} : { tls: { ...tls, requestClientCertificate: config.tls?.requireClientCertificate ?? false } }),
    logger,
    onPeerMessage: (message) => transport.deliver(message),
    clients,
    httpRoutes: { "/metrics": () => ({ contentType: "text/plain; version=0.0.4", body: metrics.render() }) },
  });
  const port = await server.listen();
  node.on("leader", (leader) => {
    leaderChanges.inc();
    logger.info("leader changed", { leader: leader ?? null });
  });
  node.on("fatal", (error) => logger.error("replica stopped on a fatal error", { error: error.message }));
  let reportedTenth = -1;
  // A rebuild that does not end says why it may not: it needs a leader elected by a quorum of trusted voters.
  let rebuildWatch: NodeJS.Timeout | undefined;
  node.on("rebuild", (event) => {
    clearInterval(rebuildWatch);
    if (event.phase === "started") {
      rebuilds.inc();
      logger.warn("rebuilding", { reason: event.reason });
      const startedAt = Date.now();
      rebuildWatch = setInterval(() => {
        const status = node.status();
        logger.warn("still rebuilding: it votes again once a leader, elected by a quorum of the other voters, has begun an instance it learns; if more voters lost their disks than a quorum can spare, restore them from a backup", {
          seconds: Math.round((Date.now() - startedAt) / 1_000),
          leader: status.leader ?? null,
          firstUnchosen: status.firstUnchosen,
        });
      }, 30_000);
      rebuildWatch.unref();
    } else logger.info("rebuilt: voting again", { ms: Math.round(event.ms) });
  });
  node.on("check", () => checks.inc());
  node.on("divergence", (event) => {
    divergences.inc();
    logger.error("consistency check failed: a replica's state diverged", { replica: event.replica, slot: event.slot, digest: event.digest, expected: event.expected, self: event.self });
  });
  node.on("step-down", (event) =>
    logger.warn(event.reason === "slow-disk" ? "stepped down: disk writes too slow to lead" : "stepped down: applying too slow to lead", {
      ms: Math.round(event.ms),
      handedTo: event.handedTo,
    }),
  );
  node.on("snapshot", (progress) => {
    if (progress.kind === "chunk") {
      // A line at the start and at every tenth of the way, not one per chunk.
      const tenth = Math.floor((10 * progress.offset) / Math.max(1, progress.size));
      if (progress.offset === 0 || tenth > reportedTenth) {
        reportedTenth = progress.offset === 0 ? 0 : tenth;
        logger.info("snapshot transfer", { from: progress.from, slot: progress.slot, offset: progress.offset, bytes: progress.size });
      }
    } else if (progress.kind === "resumed") {
      reportedTenth = Math.floor((10 * progress.offset) / Math.max(1, progress.size));
      logger.info("snapshot transfer resumed", { from: progress.from, slot: progress.slot, offset: progress.offset, bytes: progress.size });
    } else if (progress.kind === "installed") logger.info("snapshot installed", { from: progress.from, slot: progress.slot, bytes: progress.size });
    else if (progress.kind === "rejected") logger.warn("snapshot chunk rejected", { from: progress.from, reason: progress.reason });
  });
  // Members come and go through the log: dial and accept the members of the configuration chosen
  // last (the replicas given at start too, until a configuration names them), and the leader this
  // replica last followed (see `peersToReach`).
  let members = config.members.map((member) => member.id);
  let followed: string | undefined;
  const reachPeers = () => {
    const peers = peersToReach(members, followed, urls);
    transport.setPeers(peers);
    server.setPeers(peers.map((peer) => peer.id));
  };
  node.on("leader", (leader) => {
    if (leader === undefined || leader === followed) return;
    followed = leader;
    reachPeers();
  });
  node.on("config", (chosen) => {
    const endpoints = { ...Object.fromEntries(config.members.map((member) => [member.id, member.url])), ...chosen.endpoints };
    members = [...new Set([...chosen.voters, ...chosen.learners, config.id])].filter((id) => endpoints[id] !== undefined);
    for (const id of members) urls.set(id, endpoints[id] as string);
    reachPeers();
    logger.info("configuration changed", { id: chosen.id, voters: chosen.voters, learners: chosen.learners });
  });
  if (config.injectDivergenceAt !== undefined) await injectDivergence(node, stateMachine, config.injectDivergenceAt, logger);
  await node.start();
  logger.info("replica started", {
    listen: `${listen.host}:${port}`,
    members: config.members.map((member) => `${member.id}=${member.url}`),
    security: describeSecurity(config),
  });
  if (config.plantedBugs.length > 0) logger.warn("TEST ONLY: known protocol bugs planted in this replica (--plant-bug)", { bugs: config.plantedBugs });
  if (config.appBugs.length > 0) logger.warn("TEST ONLY: known application bugs planted in this replica (--plant-app-bug)", { bugs: config.appBugs });
  if (config.secret === undefined) logger.warn("PLAINTEXT DEV CLUSTER: no cluster secret, no TLS; peers are not authenticated. Allowed on loopback only.");
  else if (config.tls === undefined) logger.warn("no TLS: peers authenticate with the cluster secret, but traffic is not encrypted");

  let stopping: Promise<void> | undefined;
  return {
    config,
    node,
    server,
    transport,
    storage,
    logger,
    port,
    metrics,
    stop: () => {
      stopping ??= (async () => {
        clearInterval(rebuildWatch);
        logger.info("stopping");
        await server.close();
        await node.stop();
        logger.info("stopped");
      })();
      return stopping;
    },
  };
}

function describeSecurity(config: ServerConfig): string {
  if (config.secret === undefined) return "plaintext, unauthenticated (loopback dev cluster)";
  const parts = ["peers authenticated by cluster secret"];
  parts.push(config.tls === undefined ? "no TLS" : config.tls.requireClientCertificate ? "mutual TLS" : "TLS");
  parts.push(config.clientTokens === undefined ? "clients unauthenticated" : "clients need a token");
  return parts.join(", ");
}

/**
 * Runs a replica until SIGTERM or SIGINT, then shuts down cleanly (in-flight
 * writes finish, sockets close, files are synced and closed) and exits 0; a
 * fatal replica error exits 1.
 */
export function stopOnSignals(running: { stop(): Promise<void>; logger: Logger; node: { on(event: "fatal", listener: (error: Error) => void): unknown } }): void {
  const shutdown = (signal: string) => {
    running.logger.info("signal received", { signal });
    running.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        running.logger.error("shutdown failed", { error: (error as Error).message });
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
  running.node.on("fatal", () => {
    running.stop().finally(() => process.exit(1));
  });
}

/**
 * Test-only `--inject-divergence-at SLOT`: once the replica has applied SLOT,
 * its state machine goes back to empty behind the log's back (restored from
 * what it held before the node started).
 */
async function injectDivergence(node: { on(event: "applied", listener: (slot: number) => void): () => void }, machine: StateMachine, slot: number, logger: Logger): Promise<void> {
  const empty = await collectChunks(snapshotChunks(machine.snapshot()()));
  const off = node.on("applied", (applied) => {
    if (applied < slot) return;
    off();
    machine.restore(empty);
    logger.warn("injected a divergence: the state machine was emptied behind the log (--inject-divergence-at)", { slot: applied });
  });
}

/** Test-only `--crash-at`: the process kills itself, as a power cut would, the `after`-th time it passes `point`. */
function crashHooks(crashAt: { readonly point: FailurePoint; readonly after: number }, id: string): FailureHooks {
  let passed = 0;
  return {
    at(point) {
      if (point !== crashAt.point || ++passed < crashAt.after) return;
      // Written synchronously: a log line queued on a pipe would die with the process.
      writeSync(2, `${JSON.stringify({ time: new Date().toISOString(), level: "error", msg: "crashing at a failure point (--crash-at)", node: id, point, passed })}\n`);
      process.kill(process.pid, "SIGKILL");
    },
  };
}
