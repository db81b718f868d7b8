import { z } from "zod";
import { SnapshotInvalidError } from "./errors.js";
import type { Hash64 } from "./hash.js";
import type { KeyNode } from "./mvcc.js";
import type { KvEvent, LeaseInfo } from "./ops.js";
import { OrderedMap } from "./ordered-map.js";
import { eventSchema, keySchema, revisionSchema } from "./schema.js";
import { decodeUtf8, encodeUtf8 } from "./text.js";

/**
 * The KV state as a snapshot holds it, and its byte format: UTF-8 JSON,
 * versioned, with each key's history as compact tuples, oldest first (a
 * tombstone is `[modRevision]`, a live version
 * `[modRevision, createRevision, version, value, lease]`).
 *
 * Decoding trusts nothing: bytes that are not UTF-8, not JSON, not the schema,
 * or that break an invariant of the state (unordered keys, a version chain
 * that does not add up, a key on a lease that does not exist) are a
 * `SnapshotInvalidError` with the reason, never a crash or a half-built state.
 * Derived state (live totals, lease key sets, the expiry heap) is not stored:
 * it is rebuilt on restore, so it cannot disagree with the data.
 */
export interface KvSnapshotState {
  readonly revision: number;
  readonly compactRevision: number;
  /** The event log's start: events at or after it are all in `events`. */
  readonly historyStart: number;
  readonly alarm: boolean;
  /** The running hash over every event ever applied (part of the digest). */
  readonly chain: Hash64;
  readonly keys: OrderedMap<KeyNode>;
  readonly leases: readonly LeaseInfo[];
  /** Fencing: the highest token seen per fence name, ordered by name. */
  readonly fences: readonly (readonly [string, number])[];
  readonly events: readonly KvEvent[];
}

const FORMAT = "synod-kv";
const VERSION = 1;

const u32 = z.number().int().min(0).max(0xffffffff);
const tombstoneSchema = z.tuple([revisionSchema]);
const liveSchema = z.tuple([revisionSchema, revisionSchema, revisionSchema, z.string(), revisionSchema]);
const snapshotSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(VERSION),
  revision: revisionSchema.min(1),
  compactRevision: revisionSchema,
  historyStart: revisionSchema.min(1),
  alarm: z.boolean(),
  chain: z.tuple([u32, u32]),
  keys: z.array(z.tuple([keySchema, z.array(z.union([tombstoneSchema, liveSchema])).min(1)])),
  leases: z.array(z.tuple([revisionSchema.min(1), revisionSchema.min(1), z.number().finite()])),
  // Absent in snapshots from before fencing.
  fences: z.array(z.tuple([z.string().min(1), revisionSchema])).default([]),
  events: z.array(eventSchema),
});
type SnapshotJson = z.infer<typeof snapshotSchema>;
type NodeJson = SnapshotJson["keys"][number][1][number];

export function encodeSnapshot(state: KvSnapshotState): Uint8Array {
  const keys: [string, NodeJson[]][] = [];
  state.keys.forEach((key, head) => {
    const chain: NodeJson[] = [];
    for (let node: KeyNode | undefined = head; node !== undefined; node = node.previous) {
      chain.push(node.deleted ? [node.modRevision] : [node.modRevision, node.createRevision, node.version, node.value, node.lease]);
    }
    keys.push([key, chain.reverse()]);
  });
  const json: SnapshotJson = {
    format: FORMAT,
    version: VERSION,
    revision: state.revision,
    compactRevision: state.compactRevision,
    historyStart: state.historyStart,
    alarm: state.alarm,
    chain: [state.chain.high, state.chain.low],
    keys,
    leases: state.leases.map((lease) => [lease.id, lease.ttlMs, lease.expiresAt]),
    fences: state.fences.map(([name, token]) => [name, token]),
    events: state.events.map((event) => ({ ...event })),
  };
  return encodeUtf8(JSON.stringify(json));
}

export function decodeSnapshot(bytes: Uint8Array): KvSnapshotState {
  let text: string;
  try {
    text = decodeUtf8(bytes);
  } catch {
    throw new SnapshotInvalidError("not UTF-8");
  }
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch {
    throw new SnapshotInvalidError("not JSON");
  }
  const parsed = snapshotSchema.safeParse(input);
  if (!parsed.success) throw new SnapshotInvalidError(z.prettifyError(parsed.error).replace(/\s+/g, " ").trim());
  const json = parsed.data;
  check(json.compactRevision <= json.revision, `compactRevision ${json.compactRevision} is after revision ${json.revision}`);
  check(json.historyStart <= json.revision + 1, `historyStart ${json.historyStart} is after revision ${json.revision + 1}`);
  const leases = decodeLeases(json);
  const keys = decodeKeys(json, new Set(leases.map((lease) => lease.id)));
  let previousRevision = 0;
  for (const event of json.events) {
    check(event.revision >= previousRevision, "events out of revision order");
    check(event.revision >= json.historyStart && event.revision <= json.revision, `event at revision ${event.revision} outside [${json.historyStart}, ${json.revision}]`);
    previousRevision = event.revision;
  }
  return {
    revision: json.revision,
    compactRevision: json.compactRevision,
    historyStart: json.historyStart,
    alarm: json.alarm,
    chain: { high: json.chain[0], low: json.chain[1] },
    keys,
    leases,
    events: json.events as KvEvent[],
    fences: json.fences,
  };
}

function decodeLeases(json: SnapshotJson): LeaseInfo[] {
  const leases: LeaseInfo[] = [];
  let previousId = 0;
  for (const [id, ttlMs, expiresAt] of json.leases) {
    check(id > previousId, "leases not in increasing id order");
    previousId = id;
    leases.push({ id, ttlMs, expiresAt });
  }
  return leases;
}

function decodeKeys(json: SnapshotJson, leaseIds: ReadonlySet<number>): OrderedMap<KeyNode> {
  const keys = new OrderedMap<KeyNode>();
  let previousKey: string | undefined;
  for (const [key, chain] of json.keys) {
    check(previousKey === undefined || previousKey < key, `keys out of order at ${JSON.stringify(key)}`);
    previousKey = key;
    let head: KeyNode | undefined;
    for (const tuple of chain) head = decodeNode(key, tuple, head, json.revision);
    const last = head as KeyNode;
    check(last.deleted || last.lease === 0 || leaseIds.has(last.lease), `key ${JSON.stringify(key)} is attached to missing lease ${last.lease}`);
    keys.set(key, last);
  }
  return keys;
}

/** One history node, checked against the node before it: etcd's create/mod/version rules must add up. */
function decodeNode(key: string, tuple: NodeJson, previous: KeyNode | undefined, revision: number): KeyNode {
  const where = `key ${JSON.stringify(key)}`;
  const modRevision = tuple[0];
  check(modRevision >= 1 && modRevision <= revision, `${where} has modRevision ${modRevision} outside [1, ${revision}]`);
  check(previous === undefined || modRevision >= previous.modRevision, `${where} has history out of order`);
  if (tuple.length === 1) {
    check(previous === undefined || !previous.deleted, `${where} is deleted twice in a row`);
    return { modRevision, createRevision: 0, version: 0, value: "", lease: 0, deleted: true, previous };
  }
  const [, createRevision, version, value, lease] = tuple;
  check(version >= 1 && createRevision >= 1 && createRevision <= modRevision, `${where} has version ${version} created at ${createRevision}`);
  if (previous !== undefined && !previous.deleted) {
    check(createRevision === previous.createRevision && version === previous.version + 1, `${where} has a version chain that does not add up`);
  } else if (previous !== undefined) {
    check(version === 1 && createRevision === modRevision, `${where} is recreated without a fresh version`);
  }
  return { modRevision, createRevision, version, value, lease, deleted: false, previous };
}

function check(condition: boolean, reason: string): asserts condition {
  if (!condition) throw new SnapshotInvalidError(reason);
}
