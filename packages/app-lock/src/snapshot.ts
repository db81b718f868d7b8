import { z } from "zod";
import type { LockEvent } from "./ops.js";

/** The lock service's state as a snapshot holds it (JSON, validated on restore). */
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const mode = z.enum(["exclusive", "shared"]);
/** Log time: the leader's clock, in milliseconds, not necessarily whole. */
const time = z.number().finite().nonnegative();

const stateSchema = z.strictObject({
  format: z.literal("synod-lock/1"),
  now: time,
  nextEventIndex: count,
  grantSlot: z.number().int().min(-1),
  grantsInSlot: count,
  sessions: z.array(z.strictObject({ id: z.string().min(1), ttlMs: count, secretHash: z.string(), deadline: time })),
  locks: z.array(
    z.strictObject({
      name: z.string().min(1),
      limit: z.number().int().positive().nullable(),
      holders: z.array(z.strictObject({ session: z.string(), mode, token: count, since: time })),
      waiters: z.array(z.strictObject({ session: z.string(), mode, since: time })),
      lockDelayMs: count,
      delayedUntil: time,
      highestToken: count,
    }),
  ),
  events: z.array(z.looseObject({ index: count, time, type: z.string() })),
});

type Parsed = z.infer<typeof stateSchema>;
type Lock = Parsed["locks"][number];

export interface LockSnapshotState {
  readonly now: number;
  readonly nextEventIndex: number;
  readonly grantSlot: number;
  readonly grantsInSlot: number;
  readonly sessions: readonly Parsed["sessions"][number][];
  readonly locks: readonly (Omit<Lock, "holders" | "waiters"> & { readonly holders: readonly Lock["holders"][number][]; readonly waiters: readonly Lock["waiters"][number][] })[];
  readonly events: readonly LockEvent[];
}

/** A snapshot that does not decode to a valid lock state; the current state is left untouched. */
export class LockSnapshotInvalidError extends Error {
  readonly code = "SNAPSHOT_INVALID";
  constructor(readonly reason: string) {
    super(`invalid lock snapshot: ${reason}; fetch the snapshot again from a healthy replica`);
    this.name = "LockSnapshotInvalidError";
  }
}

export function encodeLockSnapshot(state: LockSnapshotState): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ format: "synod-lock/1", ...state }));
}

export function decodeLockSnapshot(data: Uint8Array): LockSnapshotState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (error) {
    throw new LockSnapshotInvalidError(`not UTF-8 JSON (${(error as Error).message})`);
  }
  const result = stateSchema.safeParse(parsed);
  if (!result.success) throw new LockSnapshotInvalidError(z.prettifyError(result.error).slice(0, 2_000));
  const { format: _format, ...state } = result.data;
  const sessions = new Set(state.sessions.map((session) => session.id));
  for (const lock of state.locks) {
    for (const holder of lock.holders) if (!sessions.has(holder.session)) throw new LockSnapshotInvalidError(`${lock.name} is held by unknown session ${holder.session}`);
    for (const waiter of lock.waiters) if (!sessions.has(waiter.session)) throw new LockSnapshotInvalidError(`${lock.name} is awaited by unknown session ${waiter.session}`);
  }
  return state as unknown as LockSnapshotState;
}
