export * from "./lincheck/index.js";
export * from "./sim/index.js";
export { Samples, median } from "./bench/stats.js";
