export { ConfigError, isLoopback, parseServerConfig, serverConfigSchema, type ServerConfig, type ServerConfigInput } from "./config.js";
export { LogTimeEstimator, type LogTimeSource } from "./log-time.js";
export { startServer, stopOnSignals, type RunningServer } from "./runtime.js";
export { Counter, Gauge, Histogram, LATENCY_BUCKETS, MetricsRegistry } from "./metrics.js";
export { CLIENT_FLAGS, SERVE_FLAGS, UsageError, clientTarget, configFromServeFlags, exitOnError, integerFlag, parseFlags, type ServeFlagValues } from "./cli-flags.js";
export { MEMBERS_FLAGS, MEMBERS_USAGE, membersCommand } from "./members-cli.js";
export { withMembership } from "./membership-admin.js";
