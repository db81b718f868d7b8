/**
 * Test helpers for adapters and applications built on Synod. Imports vitest:
 * use it from test files only.
 */
export { ListMachine } from "./list-machine.js";
export { runStorageConformance, type StorageHarness } from "./storage-conformance.js";
export { runTransportConformance, sampleMessages, type TransportCluster, type TransportHarness } from "./transport-conformance.js";
