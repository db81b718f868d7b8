import type { MetricsRegistry } from "@synod/server";
import type { LockMachine } from "../lock-machine.js";

/** What the lock handler reports to the metrics. */
export interface LockMetrics {
  /** Call after the machine applied commands: counts from the new events. */
  onApplied(): void;
  /** An acquire answered to a client: granted, queued, busy or error. */
  acquire(result: string): void;
  /** A fencing check answered: a stale or unknown token is a rejection. */
  tokenChecked(valid: boolean): void;
}

/**
 * The lock service's metrics: sessions, expirations, acquires by result,
 * wait and hold times (log time), queue depth and fencing rejections. Counts
 * that come from the log (expirations, grants) are read from the machine's
 * events after each applied batch, the same on every replica.
 */
export function lockMetrics(registry: MetricsRegistry, machine: LockMachine): LockMetrics {
  const expirations = registry.counter("synod_lock_session_expirations_total", "Sessions that expired (not closed).");
  const acquires = registry.counter("synod_lock_acquires_total", "Acquire requests answered by this replica, by result.");
  const grants = registry.counter("synod_lock_grants_total", "Locks granted (at once or to a waiter).");
  const rejections = registry.counter("synod_lock_fencing_rejections_total", "Token checks that found a stale or unknown token.");
  const waits = registry.histogram("synod_lock_wait_seconds", "Time from queueing to the grant (log time).");
  const holds = registry.histogram("synod_lock_hold_seconds", "Time from the grant to the release (log time).");
  registry.gauge("synod_lock_sessions", "Live sessions.", () => (machine.query({ type: "sessions" }) as { sessions?: readonly unknown[] }).sessions?.length ?? 0);
  registry.gauge("synod_lock_queue_depth", "Waiters queued over every lock.", () => {
    const result = machine.query({ type: "locks" }) as { locks?: readonly { waiters: readonly unknown[] }[] };
    return (result.locks ?? []).reduce((total, lock) => total + lock.waiters.length, 0);
  });

  let next = machine.eventIndex;
  const queuedAt = new Map<string, number>();
  const grantedAt = new Map<string, number>();
  return {
    onApplied() {
      for (let events = machine.eventsSince(next, 1_000); events.length > 0; events = machine.eventsSince(next, 1_000)) {
        for (const event of events) {
          next = event.index + 1;
          if (event.type === "session-ended" && event.reason === "expired") expirations.inc();
          if (!("lock" in event)) continue;
          const key = `${event.lock}\u0000${event.session}`;
          if (event.type === "queued") queuedAt.set(key, event.time);
          else if (event.type === "dequeued") queuedAt.delete(key);
          else if (event.type === "acquired") {
            grants.inc();
            const since = queuedAt.get(key);
            if (since !== undefined) waits.observe((event.time - since) / 1000);
            queuedAt.delete(key);
            grantedAt.set(key, event.time);
          } else if (event.type === "released") {
            const since = grantedAt.get(key);
            if (since !== undefined) holds.observe((event.time - since) / 1000);
            grantedAt.delete(key);
          }
        }
      }
      // After a snapshot restore the machine's events may start past ours.
      if (next < machine.eventIndex && machine.eventsSince(next, 1).length === 0) next = machine.eventIndex;
    },
    acquire(result) {
      acquires.inc({ result });
    },
    tokenChecked(valid) {
      if (!valid) rejections.inc();
    },
  };
}
