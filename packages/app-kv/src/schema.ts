import { z } from "zod";
import type { KvEvent, KvOp, KvQuery, KvTest } from "./ops.js";

/*
 * Zod mirrors of the types in `ops.ts`, used at the boundary only: what comes
 * out of the log (a client may have sent anything), queries, snapshots. A type
 * test (`test/schema.test.ts`) keeps each schema and its type equal.
 */

const MAX = Number.MAX_SAFE_INTEGER;

/** etcd refuses the empty key; so do we (it would also be ambiguous with the unbounded range start). */
export const keySchema = z.string().min(1);
const boundSchema = z.string();
export const revisionSchema = z.number().int().min(0).max(MAX);
const leaseIdSchema = z.number().int().min(1).max(MAX);
const leaseRefSchema = z.number().int().min(0).max(MAX);
const flag = z.boolean().optional();

const fenceSchema = z.object({ name: z.string().min(1).max(1024), token: z.number().int().nonnegative().max(MAX) }).optional();
const putSchema = z.object({ type: z.literal("put"), key: keySchema, value: z.string(), lease: leaseRefSchema.optional(), prevKv: flag, fence: fenceSchema });
const deleteSchema = z.object({ type: z.literal("delete"), key: keySchema, prevKv: flag, fence: fenceSchema });
const deleteRangeSchema = z.object({ type: z.literal("delete-range"), start: boundSchema, end: boundSchema.optional(), prevKv: flag, fence: fenceSchema });
const getSchema = z.object({ type: z.literal("get"), key: keySchema, revision: revisionSchema.optional() });
const rangeSchema = z.object({
  type: z.literal("range"),
  start: boundSchema,
  end: boundSchema.optional(),
  limit: z.number().int().min(0).max(MAX).optional(),
  revision: revisionSchema.optional(),
  keysOnly: flag,
  countOnly: flag,
});
/** A decimal integer: a safe-integer number, or a string of digits with an optional sign. */
export const deltaSchema = z.union([z.number().int().min(-MAX).max(MAX), z.string().regex(/^[+-]?\d{1,4096}$/)]);
const incrSchema = z.object({ type: z.literal("incr"), key: keySchema, delta: deltaSchema, lease: leaseRefSchema.optional(), fence: fenceSchema });

export const txnOpSchema = z.discriminatedUnion("type", [putSchema, deleteSchema, deleteRangeSchema, getSchema, rangeSchema, incrSchema]);

export const opSchema = z.discriminatedUnion("type", [
  putSchema,
  deleteSchema,
  deleteRangeSchema,
  getSchema,
  rangeSchema,
  incrSchema,
  z.object({ type: z.literal("lease-grant"), id: leaseIdSchema, ttlMs: z.number().int().min(1).max(MAX) }),
  z.object({ type: z.literal("lease-revoke"), id: leaseIdSchema }),
  z.object({ type: z.literal("lease-keepalive"), id: leaseIdSchema }),
  z.object({ type: z.literal("expire-leases") }),
  z.object({ type: z.literal("compact"), revision: revisionSchema }),
]);

const operatorSchema = z.enum(["equal", "not-equal", "greater", "less"]);

export const testSchema = z.union([
  z.object({ type: z.literal("compare"), key: keySchema, end: boundSchema.optional(), target: z.literal("value"), operator: operatorSchema, value: z.string() }),
  z.object({
    type: z.literal("compare"),
    key: keySchema,
    end: boundSchema.optional(),
    target: z.enum(["version", "createRevision", "modRevision", "lease"]),
    operator: operatorSchema,
    value: z.number().min(-MAX).max(MAX),
  }),
  z.object({ type: z.literal("exists"), key: keySchema }),
  z.object({ type: z.literal("absent"), key: keySchema }),
]);

export const querySchema = z.discriminatedUnion("type", [
  getSchema,
  rangeSchema,
  z.object({ type: z.literal("status") }),
  z.object({ type: z.literal("lease"), id: leaseIdSchema }),
  z.object({ type: z.literal("leases") }),
  z.object({
    type: z.literal("events"),
    fromRevision: revisionSchema,
    start: boundSchema.optional(),
    end: boundSchema.optional(),
    limit: z.number().int().min(0).max(MAX).optional(),
  }),
]);

export const eventSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("put"),
    revision: revisionSchema,
    key: keySchema,
    value: z.string(),
    createRevision: revisionSchema,
    version: revisionSchema,
    lease: leaseRefSchema,
    prevValue: z.string().optional(),
  }),
  z.object({ type: z.literal("delete"), revision: revisionSchema, key: keySchema, prevValue: z.string() }),
]);

export type OpFromSchema = z.infer<typeof opSchema>;
export type TestFromSchema = z.infer<typeof testSchema>;
export type QueryFromSchema = z.infer<typeof querySchema>;
export type EventFromSchema = z.infer<typeof eventSchema>;

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/**
 * Parses untrusted input; a failure is a reason for an `INVALID_REQUEST`,
 * never a throw. The reason names each issue's path and zod code only: inside
 * the state machine it becomes part of a replicated result, so it must not
 * change with zod's wording from one version to the next. `detailed` adds
 * zod's readable message, for the server boundary.
 */
export function parseWith<T>(schema: z.ZodType, input: unknown, detailed = false): Parsed<T> {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data as T };
  if (detailed) return { ok: false, reason: z.prettifyError(result.error).replace(/\s+/g, " ").trim() };
  const issues = result.error.issues.map((issue) => `${issue.path.length === 0 ? "(root)" : issue.path.map(String).join(".")}: ${issue.code}`);
  return { ok: false, reason: issues.join("; ") };
}

export function parseOp(input: unknown, detailed = false): Parsed<KvOp> {
  return parseWith<KvOp>(opSchema, input, detailed);
}

export function parseTest(input: unknown, detailed = false): Parsed<KvTest> {
  return parseWith<KvTest>(testSchema, input, detailed);
}

export function parseQuery(input: unknown, detailed = false): Parsed<KvQuery> {
  return parseWith<KvQuery>(querySchema, input, detailed);
}

export function parseEvent(input: unknown, detailed = false): Parsed<KvEvent> {
  return parseWith<KvEvent>(eventSchema, input, detailed);
}
