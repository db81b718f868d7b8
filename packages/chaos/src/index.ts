export { FaultProxy, type FaultProxyOptions, type LinkFaults, type ProxyStatistics } from "./proxy.js";
export { runCampaign, type CampaignOptions } from "./campaign.js";
export { FAULT_KINDS, Nemesis, planFaults, type FaultKind, type NemesisTarget, type PlannedFault } from "./nemesis.js";
export { SERVICES, SERVICE_NAMES, type ServiceName, type ServiceUnderTest } from "./services.js";
export type { Workload, WorkloadContext } from "./workloads/workload.js";
export { RegisterWorkload } from "./workloads/registers.js";
export { LockWorkload } from "./workloads/locks.js";
export * from "./report/index.js";
export type * from "./run-record.js";
