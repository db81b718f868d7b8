export * from "./lincheck/index.js";
export * from "./sim/index.js";
