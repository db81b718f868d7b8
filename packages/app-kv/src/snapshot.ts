import { concatBytes, invariant } from "@synod/core";
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
 * Both ways stream: `encodeSnapshotChunks` makes chunks of whole lines as
 * they are asked for, and `SnapshotDecoder` checks each line as its last
 * byte arrives, so a large state is never held twice, as bytes and as state.
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

/** The size `encodeSnapshotChunks` packs lines up to by default. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/** The whole encoding at once: `encodeSnapshotChunks`'s chunks, concatenated. For states small enough to hold twice. */
export function encodeSnapshot(state: KvSnapshotState): Uint8Array {
  return concatBytes([...encodeSnapshotChunks(state)]);
}

/**
 * The encoding as chunks of whole lines, each at most `chunkBytes` (unless
 * one line alone is longer), made only as they are asked for: the whole
 * encoding is never held. `state` must not change until the last chunk; a
 * capture, as `KvMachine.snapshot` takes, does not.
 */
export function* encodeSnapshotChunks(state: KvSnapshotState, chunkBytes = SNAPSHOT_CHUNK_BYTES): Generator<Uint8Array> {
  invariant(Number.isInteger(chunkBytes) && chunkBytes >= 1, () => `chunkBytes ${chunkBytes} is not a positive whole number`);
  let lines: Uint8Array[] = [];
  let size = 0;
  for (const line of encodeLines(state)) {
    if (size > 0 && size + line.length > chunkBytes) {
      yield concatBytes(lines);
      lines = [];
      size = 0;
    }
    lines.push(line);
    size += line.length;
  }
  // The header line is always there, so there is always a last chunk.
  invariant(size > 0, "a snapshot without a header line");
  yield concatBytes(lines);
}

/** The header line, one line per key in key order, one line per event, each with its newline. */
function* encodeLines(state: KvSnapshotState): Generator<Uint8Array> {
  const line = (value: unknown) => encodeUtf8(`${JSON.stringify(value)}\n`);
  yield line({
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
  for (const [key, head] of state.keys.entries()) {
    const chain: NodeJson[] = [];
    for (let node: KeyNode | undefined = head; node !== undefined; node = node.previous) {
      chain.push(node.deleted ? [node.modRevision] : [node.modRevision, node.createRevision, node.version, node.value, node.lease]);
    }
    yield line([key, chain.reverse()]);
  }
  for (const event of state.events) yield line({ ...event });
}

/** Reads `encodeSnapshot`'s bytes (or version 1's) at once. */
export function decodeSnapshot(bytes: Uint8Array): KvSnapshotState {
  const decoder = new SnapshotDecoder();
  decoder.push(bytes);
  return decoder.end();
}

/** Reads `encodeSnapshotChunks`'s chunks (or any split of the same bytes) as they come. */
export async function decodeSnapshotStream(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<KvSnapshotState> {
  const decoder = new SnapshotDecoder();
  for await (const chunk of chunks) decoder.push(chunk);
  return decoder.end();
}

/**
 * Decodes a snapshot pushed as chunks split anywhere, even inside a line or a
 * UTF-8 character. Lines are cut at 0x0a bytes (JSON escapes every newline
 * inside a string, and UTF-8 never has 0x0a inside a multibyte character);
 * each is decoded and checked as soon as its last byte arrives, so the
 * decoder holds the state being built and one partial line, never the whole
 * encoding (a version 1 snapshot is one line, so it is held whole: legacy).
 * Bad bytes are a `SnapshotInvalidError` from `push` or `end`, with the
 * reason the bytes would give at once; the decoder must not be used after one.
 */
export class SnapshotDecoder {
  /** The bytes after the last newline so far, as copies of the chunks' tails. */
  private partial: Uint8Array[] = [];
  private partialBytes = 0;
  /** Set by a version 2 header line: decodes the lines after it. */
  private body: BodyDecoder | undefined;
  /** Set by a version 1 document, which must be the only line. */
  private version1: KvSnapshotState | undefined;
  private ended = false;

  push(bytes: Uint8Array): void {
    invariant(!this.ended, "push after end");
    let start = 0;
    for (let newline = bytes.indexOf(0x0a); newline >= 0; newline = bytes.indexOf(0x0a, start)) {
      this.line(this.takePartial(bytes.subarray(start, newline)));
      start = newline + 1;
    }
    if (start < bytes.length) {
      // A copy (not `slice`, which is a view on a Node `Buffer`): the caller
      // may reuse `bytes`, and a view would keep the whole chunk alive.
      this.partial.push(new Uint8Array(bytes.subarray(start)));
      this.partialBytes += bytes.length - start;
    }
  }

  /** The decoded state, once every chunk has been pushed. */
  end(): KvSnapshotState {
    invariant(!this.ended, "end twice");
    this.ended = true;
    // The last line need not end with a newline.
    if (this.partialBytes > 0) this.line(this.takePartial(new Uint8Array()));
    if (this.version1 !== undefined) return this.version1;
    check(this.body !== undefined, "the snapshot is empty, not JSON");
    return this.body.end();
  }

  /** The partial line's bytes followed by `rest` (a view of `rest` when there are none). */
  private takePartial(rest: Uint8Array): Uint8Array {
    if (this.partialBytes === 0) return rest;
    const bytes = concatBytes([...this.partial, rest]);
    this.partial = [];
    this.partialBytes = 0;
    return bytes;
  }

  private line(bytes: Uint8Array): void {
    let text: string;
    try {
      text = decodeUtf8(bytes);
    } catch {
      throw new SnapshotInvalidError("not UTF-8");
    }
    check(this.version1 === undefined, "a version 1 snapshot is one JSON document");
    if (this.body !== undefined) this.body.line(text);
    else if (versionOf(text) === 1) this.version1 = decodeVersion1(parseLine(text, "the snapshot", snapshotSchema));
    else this.body = new BodyDecoder(parseLine(text, "the header", headerSchema));
  }
}

/** Version 2's lines after the header, checked against it as they come: the key lines, then the event lines. */
class BodyDecoder {
  private readonly leases: LeaseInfo[];
  private readonly keys: KeysBuilder;
  private readonly events: KvEvent[] = [];

  constructor(private readonly header: z.infer<typeof headerSchema>) {
    checkRevisions(header);
    this.leases = decodeLeases(header.leases);
    this.keys = new KeysBuilder(header.revision, this.leases);
  }

  line(text: string): void {
    const keyLines = this.keys.size;
    if (keyLines < this.header.keys) {
      const [key, chain] = parseLine(text, `key line ${keyLines + 1}`, keyEntrySchema);
      this.keys.add(key, chain);
      return;
    }
    check(this.events.length < this.header.events, "bytes after the last event");
    this.events.push(parseLine(text, `event ${this.events.length + 1}`, eventSchema) as KvEvent);
  }

  end(): KvSnapshotState {
    const header = this.header;
    check(this.keys.size === header.keys, `${header.keys} keys announced, ${this.keys.size} found`);
    check(this.events.length === header.events, `${header.events} events announced, ${this.events.length} found`);
    checkEvents(this.events, header.historyStart, header.revision);
    return assemble(header, this.keys.keys, this.leases, this.events);
  }
}

function decodeVersion1(json: SnapshotJson): KvSnapshotState {
  checkRevisions(json);
  const leases = decodeLeases(json.leases);
  const keys = new KeysBuilder(json.revision, leases);
  for (const [key, chain] of json.keys) keys.add(key, chain);
  checkEvents(json.events, json.historyStart, json.revision);
  return assemble(json, keys.keys, leases, json.events as KvEvent[]);
}

/** What both versions' headers hold besides keys, leases and events. */
type HeaderFields = Pick<SnapshotJson, "revision" | "compactRevision" | "historyStart" | "alarm" | "chain" | "fences">;

function checkRevisions(header: HeaderFields): void {
  check(header.compactRevision <= header.revision, `compactRevision ${header.compactRevision} is after revision ${header.revision}`);
  check(header.historyStart <= header.revision + 1, `historyStart ${header.historyStart} is after revision ${header.revision + 1}`);
}

function assemble(header: HeaderFields, keys: OrderedMap<KeyNode>, leases: LeaseInfo[], events: KvEvent[]): KvSnapshotState {
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

/** The key space, built one key line at a time in key order, each key's history checked as it comes. */
class KeysBuilder {
  readonly keys = new OrderedMap<KeyNode>();
  private previousKey: string | undefined;
  private readonly leaseIds: ReadonlySet<number>;

  constructor(
    private readonly revision: number,
    leases: readonly LeaseInfo[],
  ) {
    this.leaseIds = new Set(leases.map((lease) => lease.id));
  }

  /** How many keys so far. */
  get size(): number {
    return this.keys.size;
  }

  add(key: string, chain: readonly NodeJson[]): void {
    check(this.previousKey === undefined || this.previousKey < key, `keys out of order at ${JSON.stringify(key)}`);
    this.previousKey = key;
    let head: KeyNode | undefined;
    for (const tuple of chain) head = decodeNode(key, tuple, head, this.revision);
    invariant(head !== undefined, "the schema lets through a key without history");
    check(head.deleted || head.lease === 0 || this.leaseIds.has(head.lease), `key ${JSON.stringify(key)} is attached to missing lease ${head.lease}`);
    this.keys.set(key, head);
  }
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
