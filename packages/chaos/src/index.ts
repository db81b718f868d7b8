export { FaultProxy, type FaultProxyOptions, type LinkFaults, type ProxyStatistics } from "./proxy.js";
export { runCampaign, type CampaignOptions } from "./campaign.js";
export { FAULT_KINDS, Nemesis, planFaults, type FaultKind, type NemesisTarget, type PlannedFault } from "./nemesis.js";
export { RegisterWorkload } from "./workloads/registers.js";
export * from "./report/index.js";
export type * from "./run-record.js";
