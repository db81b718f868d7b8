import { z } from "zod";
import type { LockOp, LockQueryOp } from "./ops.js";

/** Longest lock name and session id, in UTF-16 units. */
export const MAX_NAME_LENGTH = 1024;
/** The longest lock-delay a lock may ask for (Chubby caps it at a minute). */
export const MAX_LOCK_DELAY_MS = 60_000;
/** Most permits of a semaphore. */
export const MAX_PERMITS = 1_000_000;

const MAX = Number.MAX_SAFE_INTEGER;
const name = z.string().min(1).max(MAX_NAME_LENGTH);
const sessionId = z.string().min(1).max(256);
const mode = z.enum(["exclusive", "shared"]);
const secretHash = z.string().max(256);

export const lockOpSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("open-session"), id: sessionId, ttlMs: z.number().int().positive().max(MAX), secretHash }),
  z.strictObject({ type: z.literal("renew-sessions"), ids: z.array(sessionId).max(1_000_000) }),
  z.strictObject({ type: z.literal("close-session"), id: sessionId, secretHash }),
  z.strictObject({ type: z.literal("tick") }),
  z.strictObject({
    type: z.literal("acquire"),
    session: sessionId,
    secretHash,
    lock: name,
    mode,
    limit: z.number().int().min(1).max(MAX_PERMITS).optional(),
    wait: z.boolean(),
    lockDelayMs: z.number().int().nonnegative().max(MAX_LOCK_DELAY_MS).optional(),
  }),
  z.strictObject({ type: z.literal("release"), session: sessionId, secretHash, lock: name }),
  z.strictObject({ type: z.literal("cancel"), session: sessionId, secretHash, lock: name }),
  z.strictObject({ type: z.literal("force-release"), lock: name, session: sessionId.optional(), reason: z.string().max(1024) }),
]);

export const lockQuerySchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("sessions") }),
  z.strictObject({ type: z.literal("session"), id: sessionId }),
  z.strictObject({ type: z.literal("locks"), prefix: z.string().max(MAX_NAME_LENGTH).optional() }),
  z.strictObject({ type: z.literal("lock"), lock: name }),
  z.strictObject({ type: z.literal("check-token"), lock: name, token: z.number().int().nonnegative().max(MAX) }),
  z.strictObject({ type: z.literal("events"), from: z.number().int().nonnegative().max(MAX), limit: z.number().int().positive().max(100_000).optional() }),
]);

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

function parse<T>(schema: z.ZodType, input: unknown): Parsed<T> {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data as T };
  return { ok: false, reason: z.prettifyError(result.error).slice(0, 2_000) };
}

export const parseLockOp = (input: unknown): Parsed<LockOp> => parse<LockOp>(lockOpSchema, input);
export const parseLockQuery = (input: unknown): Parsed<LockQueryOp> => parse<LockQueryOp>(lockQuerySchema, input);
