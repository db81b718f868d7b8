/**
 * The child process of `crash.test.ts`. Bundled by the test with esbuild and
 * run with plain `node`:
 *
 *   node crash-child.mjs <dir> <seed> <childSeed> <segmentBytes> <expectExisting 0|1>
 *
 * Opens a FileStorage (nodeId "crash"), prints what it recovered as one JSON
 * line, then persists batches until it is killed: many persists in flight at
 * once (group commit), each announced by an intent line before `persist` is
 * called and by an ack line once it resolved, both written synchronously so
 * that a SIGKILL never loses a line that was written. Every slot's value is a
 * pure function of (seed, slot) (see crash-model.ts); the batches' shapes
 * come from childSeed. It continues from where the recovered state ends.
 */
import { writeSync } from "node:fs";
import { basename } from "node:path";
import { type PersistBatch, SeededRandom, type SlotRecord, collectChunks, snapshotData as dataOf } from "@synod/core";
import { FileStorage } from "../src/index.js";
import { CRASH_NODE, type ChildLine, bytesDigest, expectedValue, snapshotData, valueDigest } from "./crash-model.js";

/** The child stops by itself after this long, whatever happens to its parent. */
const MAX_LIFETIME_MS = 20_000;
/** Compact when this many slots are above the log start, keeping the newest `KEEP_SLOTS`. */
const COMPACT_ABOVE = 250;
const KEEP_SLOTS = 40;

function emit(line: ChildLine): void {
  const buffer = Buffer.from(`${JSON.stringify(line)}\n`);
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += writeSync(1, buffer, offset);
    } catch (error) {
      // A non-blocking pipe that is full: wait for the parent to read. Anything else (EPIPE: the parent is gone) ends the child.
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") process.exit(3);
    }
  }
}

function fatal(error: unknown): never {
  const failure = error instanceof Error ? error : new Error(String(error));
  emit({ t: "error", name: failure.name, message: failure.message });
  process.exit(1);
}

async function main(): Promise<void> {
  const [directory, seedText, childSeedText, segmentText, existingText] = process.argv.slice(2);
  if (directory === undefined || seedText === undefined || childSeedText === undefined || segmentText === undefined) {
    throw new Error("usage: crash-child <dir> <seed> <childSeed> <segmentBytes> <expectExisting>");
  }
  const seed = Number(seedText);
  const rng = new SeededRandom(Number(childSeedText));
  setTimeout(() => process.exit(2), MAX_LIFETIME_MS);

  let storage: FileStorage;
  try {
    storage = await FileStorage.open(directory, { nodeId: CRASH_NODE, expectExisting: existingText === "1", segmentBytes: Number(segmentText) });
  } catch (error) {
    fatal(error);
  }
  const state = await storage.load();
  const snapshot = state.snapshot;
  const tornTail = storage.recovery.tornTail;
  emit({
    t: "state",
    records: state.records.map((record) => [record.slot, record.ballot.round, record.ballot.node, valueDigest(record.value), record.chosen ? 1 : 0] as const),
    promised: { round: state.promised.round, node: state.promised.node },
    logStart: state.logStart,
    snapshot:
      snapshot === undefined
        ? null
        : {
            slot: snapshot.handle.slot,
            digest: bytesDigest(await collectChunks(dataOf(snapshot))),
            handleOk:
              snapshot.handle.time === snapshot.handle.slot &&
              snapshot.handle.configs[0]?.voters.length === 1 &&
              snapshot.handle.configs[0]?.voters[0] === CRASH_NODE &&
              snapshot.handle.sessions.length === 0,
          },
    tornTail: tornTail === undefined ? null : { ...tornTail, file: basename(tornTail.file) },
    removed: [...storage.recovery.removedFiles],
    segments: storage.recovery.segments,
    commits: storage.recovery.commits,
  });

  // Continue where the recovered state ends. Slots are issued in ascending
  // order and commits are durable in order, so every slot below `nextSlot`
  // is durable (or compacted into the snapshot).
  // Like the replica core: accepting at a ballot implies promising it. A crash
  // between a group commit's fdatasync and the metadata write keeps the record
  // but loses the promise (batches are not atomic across log and metadata), so
  // never write below a recovered record's ballot.
  let promisedRound = Math.max(state.promised.round, ...state.records.map((record) => record.ballot.round));
  let nextSlot = Math.max(state.logStart, (state.records.at(-1)?.slot ?? -1) + 1, (snapshot?.handle.slot ?? -1) + 1);
  let ackedThrough = nextSlot - 1;
  let logStart = state.logStart;
  let unchosen = state.records.filter((record) => !record.chosen).map((record) => record.slot);
  let nextId = 0;
  let inflight = 0;
  let target = 1 + rng.integer(32);
  let issuedSinceRetarget = 0;
  let compacting = false;

  const issue = (batch: PersistBatch, records: readonly SlotRecord[]): void => {
    const id = nextId++;
    const throughSlot = nextSlot - 1;
    emit({
      t: "i",
      n: id,
      b: promisedRound,
      r: records.map((record) => record.slot),
      c: records.filter((record) => record.chosen).map((record) => record.slot),
      m: [...batch.chosen],
      p: batch.promised?.round ?? null,
      tb: batch.truncateBefore ?? null,
    });
    inflight += 1;
    storage.persist(batch).then(() => {
      emit({ t: "a", n: id });
      inflight -= 1;
      if (throughSlot > ackedThrough) ackedThrough = throughSlot;
      if (batch.truncateBefore !== undefined) compacting = false;
      maybeCompact();
      pump();
    }, fatal);
  };

  const nextBatch = (): void => {
    let promised: PersistBatch["promised"];
    if (promisedRound === 0 || rng.chance(0.01)) {
      promisedRound += 1 + rng.integer(2);
      promised = { round: promisedRound, node: CRASH_NODE };
    }
    const ballot = { round: promisedRound, node: CRASH_NODE };
    const records: SlotRecord[] = [];
    const roll = rng.integer(10);
    const count = roll < 1 ? 0 : roll < 7 ? 1 : 2 + rng.integer(5);
    for (let index = 0; index < count; index += 1) {
      const slot = nextSlot++;
      const chosen = rng.chance(0.15);
      records.push({ slot, ballot, value: expectedValue(seed, slot), chosen });
      if (!chosen) unchosen.push(slot);
    }
    // Sometimes accept an unchosen slot again at the current ballot: a later record replaces the earlier one.
    if (unchosen.length > 0 && rng.chance(0.05)) {
      const slot = unchosen[rng.integer(unchosen.length)] as number;
      if (!records.some((record) => record.slot === slot)) records.push({ slot, ballot, value: expectedValue(seed, slot), chosen: false });
    }
    const marks: number[] = [];
    if (unchosen.length > 0 && rng.chance(0.4)) {
      const wanted = 1 + rng.integer(4);
      for (let index = 0; index < wanted && unchosen.length > 0; index += 1) {
        marks.push(unchosen.splice(rng.integer(unchosen.length), 1)[0] as number);
      }
    }
    if (records.length === 0 && marks.length === 0 && promised === undefined) {
      const slot = nextSlot++;
      records.push({ slot, ballot, value: expectedValue(seed, slot), chosen: false });
      unchosen.push(slot);
    }
    issue({ promised, records, chosen: marks, truncateBefore: undefined }, records);
  };

  /** Snapshot through a durable slot, then truncate the log below it: the snapshot is durable first. */
  const maybeCompact = (): void => {
    if (compacting || ackedThrough + 1 - logStart <= COMPACT_ABOVE) return;
    compacting = true;
    const truncateBefore = ackedThrough + 1 - KEEP_SLOTS;
    const slot = truncateBefore - 1;
    emit({ t: "si", slot });
    storage.writeSnapshot({ slot, time: slot, configs: [{ id: -1, voters: [CRASH_NODE], learners: [] }], sessions: [] }, [snapshotData(seed, slot)]).then(() => {
      emit({ t: "sa", slot });
      logStart = truncateBefore;
      unchosen = unchosen.filter((unchosenSlot) => unchosenSlot >= truncateBefore);
      issue({ promised: undefined, records: [], chosen: [], truncateBefore }, []);
    }, fatal);
  };

  const pump = (): void => {
    while (inflight < target) {
      nextBatch();
      issuedSinceRetarget += 1;
      if (issuedSinceRetarget >= 64) {
        issuedSinceRetarget = 0;
        target = 1 + rng.integer(32);
      }
    }
  };

  pump();
}

main().catch(fatal);
