import { z } from "zod";
import { SnapshotInvalidError } from "./errors.js";
import type { Hash64 } from "./hash.js";
import type { KeyNode } from "./mvcc.js";
import type { KvEvent, LeaseInfo } from "./ops.js";
import { OrderedMap } from "./ordered-map.js";
import { eventSchema, keySchema, revisionSchema } from "./schema.js";
import { decodeUtf8, encodeUtf8 } from "./text.js";

/**
 * The KV state as a snapshot holds it, and its byte format: UTF-8 JSON
 * lines (version 2), so that no single string holds the whole state (V8
 * caps a string well below a gigabyte): a header line, then one line per
 * key with its history as compact tuples, oldest first (a tombstone is
 * `[modRevision]`, a live version `[modRevision, createRevision, version,
 * value, lease]`), then one line per retained event. Version 1 (one JSON
 * document) is still read.
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
const VERSION = 2;

const u32 = z.number().int().min(0).max(0xffffffff);
const tombstoneSchema = z.tuple([revisionSchema]);
const liveSchema = z.tuple([revisionSchema, revisionSchema, revisionSchema, z.string(), revisionSchema]);
const keyEntrySchema = z.tuple([keySchema, z.array(z.union([tombstoneSchema, liveSchema])).min(1)]);
const headerSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(VERSION),
  revision: revisionSchema.min(1),
  compactRevision: revisionSchema,
  historyStart: revisionSchema.min(1),
  alarm: z.boolean(),
  chain: z.tuple([u32, u32]),
  leases: z.array(z.tuple([revisionSchema.min(1), revisionSchema.min(1), z.number().finite()])),
  fences: z.array(z.tuple([z.string().min(1), revisionSchema])),
  /** How many key lines, then event lines, follow. */
  keys: z.number().int().nonnegative(),
  events: z.number().int().nonnegative(),
});
const snapshotSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(1),
  revision: revisionSchema.min(1),
  compactRevision: revisionSchema,
  historyStart: revisionSchema.min(1),
  alarm: z.boolean(),
  chain: z.tuple([u32, u32]),
  keys: z.array(keyEntrySchema),
  leases: z.array(z.tuple([revisionSchema.min(1), revisionSchema.min(1), z.number().finite()])),
  // Absent in snapshots from before fencing.
  fences: z.array(z.tuple([z.string().min(1), revisionSchema])).default([]),
  events: z.array(eventSchema),
});
type SnapshotJson = z.infer<typeof snapshotSchema>;
type NodeJson = SnapshotJson["keys"][number][1][number];

export function encodeSnapshot(state: KvSnapshotState): Uint8Array {
  const lines: Uint8Array[] = [];
  const line = (value: unknown) => lines.push(encodeUtf8(`${JSON.stringify(value)}\n`));
  line({
    format: FORMAT,
    version: VERSION,
    revision: state.revision,
    compactRevision: state.compactRevision,
    historyStart: state.historyStart,
    alarm: state.alarm,
    chain: [state.chain.high, state.chain.low],
    leases: state.leases.map((lease) => [lease.id, lease.ttlMs, lease.expiresAt]),
    fences: state.fences.map(([name, token]) => [name, token]),
    keys: state.keys.size,
    events: state.events.length,
  } satisfies z.infer<typeof headerSchema>);
  state.keys.forEach((key, head) => {
    const chain: NodeJson[] = [];
    for (let node: KeyNode | undefined = head; node !== undefined; node = node.previous) {
      chain.push(node.deleted ? [node.modRevision] : [node.modRevision, node.createRevision, node.version, node.value, node.lease]);
    }
    line([key, chain.reverse()]);
  });
  for (const event of state.events) line({ ...event });
  let size = 0;
  for (const part of lines) size += part.length;
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const part of lines) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/** Reads `encodeSnapshot`'s bytes (or version 1's), line by line. */
export function decodeSnapshot(bytes: Uint8Array): KvSnapshotState {
  const lines = lineReader(bytes);
  const first = lines.next();
  if (first === undefined) throw new SnapshotInvalidError("the snapshot is empty, not JSON");
  if (versionOf(first) === 1) {
    check(lines.next() === undefined, "a version 1 snapshot is one JSON document");
    return decodeVersion1(parseLine(first, "the snapshot", snapshotSchema));
  }
  const header = parseLine(first, "the header", headerSchema);
  check(header.compactRevision <= header.revision, `compactRevision ${header.compactRevision} is after revision ${header.revision}`);
  check(header.historyStart <= header.revision + 1, `historyStart ${header.historyStart} is after revision ${header.revision + 1}`);
  const leases = decodeLeases(header.leases);
  const keys = decodeKeys(
    (function* () {
      for (let index = 0; index < header.keys; index += 1) {
        const text = lines.next();
        if (text === undefined) throw new SnapshotInvalidError(`${header.keys} keys announced, ${index} found`);
        yield parseLine(text, `key line ${index + 1}`, keyEntrySchema) as [string, NodeJson[]];
      }
    })(),
    header.revision,
    new Set(leases.map((lease) => lease.id)),
  );
  const events: KvEvent[] = [];
  for (let index = 0; index < header.events; index += 1) {
    const text = lines.next();
    if (text === undefined) throw new SnapshotInvalidError(`${header.events} events announced, ${index} found`);
    events.push(parseLine(text, `event ${index + 1}`, eventSchema) as KvEvent);
  }
  check(lines.next() === undefined, "bytes after the last event");
  checkEvents(events, header.historyStart, header.revision);
  return {
    revision: header.revision,
    compactRevision: header.compactRevision,
    historyStart: header.historyStart,
    alarm: header.alarm,
    chain: { high: header.chain[0], low: header.chain[1] },
    keys,
    leases,
    events,
    fences: header.fences,
  };
}

function decodeVersion1(json: SnapshotJson): KvSnapshotState {
  check(json.compactRevision <= json.revision, `compactRevision ${json.compactRevision} is after revision ${json.revision}`);
  check(json.historyStart <= json.revision + 1, `historyStart ${json.historyStart} is after revision ${json.revision + 1}`);
  const leases = decodeLeases(json.leases);
  const keys = decodeKeys(json.keys, json.revision, new Set(leases.map((lease) => lease.id)));
  checkEvents(json.events, json.historyStart, json.revision);
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

/** The lines of `bytes` (newline-separated; JSON escapes every newline inside a string), as text. */
function lineReader(bytes: Uint8Array): { next(): string | undefined } {
  let at = 0;
  return {
    next() {
      if (at >= bytes.length) return undefined;
      let end = bytes.indexOf(0x0a, at);
      if (end < 0) end = bytes.length;
      const slice = bytes.subarray(at, end);
      at = end + 1;
      try {
        return decodeUtf8(slice);
      } catch {
        throw new SnapshotInvalidError("not UTF-8");
      }
    },
  };
}

/** The `version` a header line claims, if it is JSON with one. */
function versionOf(text: string): unknown {
  try {
    return (JSON.parse(text) as { version?: unknown }).version;
  } catch {
    return undefined;
  }
}

function parseLine<T>(text: string, what: string, schema: z.ZodType<T>): T {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch {
    throw new SnapshotInvalidError(`${what} is not JSON`);
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new SnapshotInvalidError(`${what}: ${z.prettifyError(parsed.error).replace(/\s+/g, " ").trim()}`);
  return parsed.data;
}

function checkEvents(events: readonly { readonly revision: number }[], historyStart: number, revision: number): void {
  let previousRevision = 0;
  for (const event of events) {
    check(event.revision >= previousRevision, "events out of revision order");
    check(event.revision >= historyStart && event.revision <= revision, `event at revision ${event.revision} outside [${historyStart}, ${revision}]`);
    previousRevision = event.revision;
  }
}

function decodeLeases(tuples: SnapshotJson["leases"]): LeaseInfo[] {
  const leases: LeaseInfo[] = [];
  let previousId = 0;
  for (const [id, ttlMs, expiresAt] of tuples) {
    check(id > previousId, "leases not in increasing id order");
    previousId = id;
    leases.push({ id, ttlMs, expiresAt });
  }
  return leases;
}

function decodeKeys(entries: Iterable<readonly [string, readonly NodeJson[]]>, revision: number, leaseIds: ReadonlySet<number>): OrderedMap<KeyNode> {
  const keys = new OrderedMap<KeyNode>();
  let previousKey: string | undefined;
  for (const [key, chain] of entries) {
    check(previousKey === undefined || previousKey < key, `keys out of order at ${JSON.stringify(key)}`);
    previousKey = key;
    let head: KeyNode | undefined;
    for (const tuple of chain) head = decodeNode(key, tuple, head, revision);
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
