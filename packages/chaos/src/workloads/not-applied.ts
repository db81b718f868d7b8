import { classifyKvError } from "./kv-clients.js";

/**
 * An operation of several calls (read, then a guarded write) that ended
 * without taking effect: its read did not answer, so no write was sent, or
 * every guarded write it sent was answered "not applied". The history
 * records it as `fail`, although the calls themselves did not fail.
 */
export class NotAppliedError extends Error {
  override readonly name = "NotAppliedError";
}

/** `classifyKvError`, plus `NotAppliedError` as `fail`. */
export function classifyWorkloadError(error: unknown): "fail" | "unknown" | undefined {
  if (error instanceof NotAppliedError) return "fail";
  return classifyKvError(error);
}

/**
 * Runs the reads an operation makes before its first write. Nothing was
 * written yet, so whatever they throw (no answer, a refusal) means the
 * operation certainly did not take effect; an error the store could not have
 * raised (a bug in the workload) goes through unchanged.
 */
export async function beforeWriting<T>(what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (classifyKvError(error) === undefined) throw error;
    throw new NotAppliedError(`${what} did not answer before anything was written`, { cause: error });
  }
}
