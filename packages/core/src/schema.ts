import { z } from "zod";
import type { Message } from "./messages.js";
import type { Command, SlotRecord, Value } from "./values.js";
import { InvalidInputError } from "./errors.js";

/**
 * Wire and disk schemas. They mirror the TypeScript types in `messages.ts`
 * and `values.ts` (a type test keeps them equal) and are used only at a
 * boundary: decoding what a peer sent or what a disk held.
 */
const nodeId = z.string().min(1).max(256);
const slot = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const ballotSchema = z.object({
  round: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  node: z.string().max(256),
});

export const commandBodySchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("open-session") }),
  z.object({ type: z.literal("close-session") }),
  z.object({ type: z.literal("op"), op: z.unknown() }),
  z.object({
    type: z.literal("multi"),
    guard: z.array(z.unknown()).readonly(),
    top: z.array(z.unknown()).readonly(),
    fop: z.array(z.unknown()).readonly(),
  }),
]);

export const commandSchema = z.object({
  session: z.string().min(1).max(256),
  seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  body: commandBodySchema,
});

const nodeIds = z.array(nodeId).max(1024).readonly();

const endpoints = z.record(nodeId, z.string().min(1).max(2048)).optional();

export const configurationSchema = z.object({
  id: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER),
  voters: nodeIds,
  learners: nodeIds,
  endpoints,
});

export const valueSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("noop") }),
  z.object({ type: z.literal("check") }),
  z.object({
    type: z.literal("config"),
    change: z.object({ expected: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER), voters: nodeIds, learners: nodeIds, endpoints }),
    request: z.string().max(256),
  }),
  z.object({
    type: z.literal("batch"),
    time: z.number().finite(),
    commands: z.array(commandSchema).readonly(),
    epoch: ballotSchema.optional(),
  }),
]);

export const slotRecordSchema = z.object({
  slot,
  ballot: ballotSchema,
  value: valueSchema,
  chosen: z.boolean(),
});

const uint32 = z.number().int().nonnegative().max(0xffffffff);

/** A snapshot handle as a disk or a peer hands it over. */
export const snapshotHandleSchema = z.object({
  slot: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER),
  time: z.number().finite(),
  epoch: ballotSchema.optional(),
  configs: z.array(configurationSchema).min(1),
  sessions: z.array(
    z.object({
      session: z.string(),
      lastSeq: z.number().int().nonnegative(),
      lastOutcome: z.union([
        z.object({ ok: z.literal(true), result: z.unknown() }),
        z.object({ ok: z.literal(false), error: z.object({ code: z.string(), message: z.string(), leaderHint: z.string().optional() }) }),
      ]),
      lastActive: z.number().finite(),
    }),
  ),
});

const acceptEntrySchema = z.object({ slot, value: valueSchema });
const envelope = { from: nodeId, to: nodeId };

export const messageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("pre-vote"), ...envelope, ballot: ballotSchema }),
  z.object({ type: z.literal("pre-vote-reply"), ...envelope, ballot: ballotSchema, granted: z.boolean() }),
  z.object({ type: z.literal("prepare"), ...envelope, ballot: ballotSchema, fromSlot: slot, transfer: z.boolean().optional() }),
  z.object({ type: z.literal("take-over"), ...envelope, ballot: ballotSchema }),
  z.object({ type: z.literal("need-snapshot"), ...envelope, ballot: ballotSchema, logStart: slot }),
  z.object({
    type: z.literal("snapshot-request"),
    ...envelope,
    minSlot: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER),
    resume: z.object({ slot, checksum: uint32, offset: slot }).optional(),
    length: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  }),
  z.object({
    type: z.literal("snapshot-chunk"),
    ...envelope,
    available: z.boolean(),
    slot: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER),
    checksum: uint32,
    size: slot,
    offset: slot,
    data: z.string().max(16 * 1024 * 1024).regex(/^[A-Za-z0-9+/]*={0,2}$/),
    crc: uint32,
  }),
  z.object({
    type: z.literal("promise"),
    ...envelope,
    ballot: ballotSchema,
    fromSlot: slot,
    nextSlot: slot,
    entries: z.array(slotRecordSchema).readonly(),
    noMoreAccepted: z.boolean(),
    logStart: slot,
    firstUnchosen: slot,
  }),
  z.object({
    type: z.literal("accept"),
    ...envelope,
    ballot: ballotSchema,
    entries: z.array(acceptEntrySchema).readonly(),
    firstUnchosen: slot,
  }),
  z.object({
    type: z.literal("accepted"),
    ...envelope,
    ballot: ballotSchema,
    slots: z.array(slot).readonly(),
    firstUnchosen: slot,
  }),
  z.object({
    type: z.literal("reject"),
    ...envelope,
    ballot: ballotSchema,
    promised: ballotSchema,
    reason: z.enum(["promised-higher", "leader-alive", "untrusted"]),
  }),
  z.object({
    type: z.literal("success"),
    ...envelope,
    ballot: ballotSchema,
    entries: z.array(acceptEntrySchema).readonly(),
    firstUnchosen: slot,
  }),
  z.object({
    type: z.literal("heartbeat"),
    ...envelope,
    ballot: ballotSchema,
    firstUnchosen: slot,
    round: slot,
    logTime: z.number().finite(),
    horizon: z.object({ probe: uint32, slot }).optional(),
  }),
  z.object({ type: z.literal("heartbeat-reply"), ...envelope, ballot: ballotSchema, round: slot, firstUnchosen: slot, rebuilding: uint32.optional() }),
  z.object({ type: z.literal("digest"), ...envelope, slot, digest: z.string().min(1).max(512) }),
]);

/** Validates an untrusted decoded message; throws `InvalidInputError` with the reason. */
export function parseMessage(input: unknown): Message {
  const result = messageSchema.safeParse(input);
  if (!result.success) throw new InvalidInputError("message", z.prettifyError(result.error));
  return result.data as Message;
}

export function parseSlotRecord(input: unknown): SlotRecord {
  const result = slotRecordSchema.safeParse(input);
  if (!result.success) throw new InvalidInputError("slot record", z.prettifyError(result.error));
  return result.data as SlotRecord;
}

export function parseCommand(input: unknown): Command {
  const result = commandSchema.safeParse(input);
  if (!result.success) throw new InvalidInputError("command", z.prettifyError(result.error));
  return result.data as Command;
}

export type ValueFromSchema = z.infer<typeof valueSchema>;
export type MessageFromSchema = z.infer<typeof messageSchema>;
/** Compile-time check that the schemas and the types agree (see `test/schema.test.ts`). */
export type _SchemaValue = Value;
