/** Builders of cas-register operations for the checker's and the shrinker's tests. */
import type { CasRegisterInput, CasRegisterOutput, ClientId, Operation, RegisterValue } from "../src/lincheck/index.js";

export type RegisterOperation = Operation<CasRegisterInput, CasRegisterOutput>;
export const NEVER = Number.POSITIVE_INFINITY;

/** `returned` NEVER: unknown outcome, open to the end. */
export const write = (value: number, call: number, returned: number, clientId: ClientId = 0): RegisterOperation => ({
  clientId,
  input: { kind: "write", value },
  output: returned === NEVER ? undefined : { kind: "write" },
  call,
  return: returned,
});

export const read = (value: RegisterValue, call: number, returned: number, clientId: ClientId = 1): RegisterOperation => ({
  clientId,
  input: { kind: "read" },
  output: { kind: "read", value },
  call,
  return: returned,
});

/** `succeeded` undefined: unknown outcome, open to the end. */
export const cas = (from: RegisterValue, to: number, succeeded: boolean | undefined, call: number, returned: number, clientId: ClientId = 2): RegisterOperation => ({
  clientId,
  input: { kind: "cas", from, to },
  output: succeeded === undefined ? undefined : { kind: "cas", succeeded },
  call,
  return: succeeded === undefined ? NEVER : returned,
});
