import { DeadlineHeap, invariant } from "@synod/core";
import { type Hash64, ZERO_HASH, addHash, hashFields, subtractHash } from "./hash.js";
import type { Journal } from "./journal.js";
import type { LeaseInfo } from "./ops.js";

/**
 * Leases (TTL keys), expiring by *log* time: a lease granted at log time t
 * with ttl d expires at the first command whose log time is ≥ t + d. Every
 * replica sees the same log times in the same order, so every replica expires
 * the same leases at the same command, whatever its own clock says.
 */
interface Lease {
  readonly id: number;
  readonly ttlMs: number;
  expiresAt: number;
  /** Live keys attached to the lease. */
  readonly keys: Set<string>;
}

export class LeaseTable {
  private readonly leases = new Map<number, Lease>();
  /** Min-heap on (expiresAt, id): the order leases expire in, the same on every replica. */
  private readonly heap = new DeadlineHeap<number>();
  private sum: Hash64 = ZERO_HASH;

  constructor(private readonly journal: Journal) {}

  get size(): number {
    return this.leases.size;
  }

  /** An order-independent hash of every lease's id, ttl and expiry. */
  get hash(): Hash64 {
    return this.sum;
  }

  has(id: number): boolean {
    return this.leases.has(id);
  }

  info(id: number): LeaseInfo | undefined {
    const lease = this.leases.get(id);
    return lease === undefined ? undefined : { id, ttlMs: lease.ttlMs, expiresAt: lease.expiresAt };
  }

  /** Every lease, ordered by id. */
  list(): LeaseInfo[] {
    const ids = [...this.leases.keys()].sort((a, b) => a - b);
    return ids.map((id) => this.info(id) as LeaseInfo);
  }

  /** The lease's keys, ordered (the order they are deleted in). */
  keysOf(id: number): string[] {
    const lease = this.leases.get(id);
    return lease === undefined ? [] : [...lease.keys].sort(compareStrings);
  }

  grant(id: number, ttlMs: number, now: number): LeaseInfo {
    const lease: Lease = { id, ttlMs, expiresAt: now + ttlMs, keys: new Set() };
    this.insert(lease);
    this.journal.record(() => this.erase(lease));
    return { id, ttlMs, expiresAt: lease.expiresAt };
  }

  /** Removes a lease, whose keys the caller has deleted already. */
  remove(id: number): void {
    const lease = this.leases.get(id);
    if (lease === undefined) return;
    this.erase(lease);
    this.journal.record(() => this.insert(lease));
  }

  keepAlive(id: number, now: number): LeaseInfo | undefined {
    const lease = this.leases.get(id);
    if (lease === undefined) return undefined;
    const before = lease.expiresAt;
    this.setExpiry(lease, now + lease.ttlMs);
    // The heap entry of `before` stays (it only goes stale), so undoing needs no heap surgery.
    this.journal.record(() => this.setExpiry(lease, before));
    return { id, ttlMs: lease.ttlMs, expiresAt: lease.expiresAt };
  }

  attach(id: number, key: string): void {
    const lease = this.leases.get(id);
    if (lease === undefined || lease.keys.has(key)) return;
    lease.keys.add(key);
    this.journal.record(() => lease.keys.delete(key));
  }

  detach(id: number, key: string): void {
    const lease = this.leases.get(id);
    if (lease === undefined || !lease.keys.delete(key)) return;
    this.journal.record(() => lease.keys.add(key));
  }

  /**
   * The lease that expires first if it is due at `now`, taken off the heap.
   * Only between commands: popping is not journaled.
   */
  takeDue(now: number): number | undefined {
    return this.heap.popDue(now, (id, at) => this.leases.get(id)?.expiresAt === at);
  }

  /** The earliest expiry of any lease (log time), undefined with no leases. */
  nextExpiry(): number | undefined {
    return this.heap.peek((id, at) => this.leases.get(id)?.expiresAt === at);
  }

  /** Rebuilds the heap without its stale entries once they dominate it. Only between commands. */
  compactHeap(): void {
    if (this.heap.size <= 2 * this.leases.size + 64) return;
    this.heap.rebuild([...this.leases.values()].map((lease) => ({ at: lease.expiresAt, id: lease.id })));
  }

  /**
   * Checks that the attachments match the keys (`leasedKeys`: every live key
   * with a lease), that every lease has a heap entry at its expiry, and the
   * hash. For tests.
   */
  checkInvariants(leasedKeys: ReadonlyMap<string, number>): void {
    let attached = 0;
    let sum = ZERO_HASH;
    for (const lease of this.leases.values()) {
      for (const key of lease.keys) invariant(leasedKeys.get(key) === lease.id, () => `lease ${lease.id} holds ${key}, which is not on it`);
      attached += lease.keys.size;
      invariant(this.heap.contains(lease.expiresAt, lease.id), () => `lease ${lease.id} missing from the expiry heap`);
      sum = addHash(sum, leaseHash(lease));
    }
    invariant(attached === leasedKeys.size, () => `${leasedKeys.size} leased keys, ${attached} attached`);
    invariant(sum.high === this.sum.high && sum.low === this.sum.low, "lease hash differs from a recount");
  }

  /** Replaces every lease (from a validated snapshot); `keys` attaches the live keys. */
  load(leases: readonly LeaseInfo[], keys: readonly (readonly [key: string, lease: number])[]): void {
    this.leases.clear();
    this.heap.rebuild([]);
    this.sum = ZERO_HASH;
    for (const info of leases) this.insert({ id: info.id, ttlMs: info.ttlMs, expiresAt: info.expiresAt, keys: new Set() });
    for (const [key, id] of keys) this.leases.get(id)?.keys.add(key);
  }

  private insert(lease: Lease): void {
    this.leases.set(lease.id, lease);
    this.sum = addHash(this.sum, leaseHash(lease));
    this.heap.push(lease.expiresAt, lease.id);
  }

  private erase(lease: Lease): void {
    this.leases.delete(lease.id);
    this.sum = subtractHash(this.sum, leaseHash(lease));
  }

  private setExpiry(lease: Lease, expiresAt: number): void {
    this.sum = subtractHash(this.sum, leaseHash(lease));
    lease.expiresAt = expiresAt;
    this.sum = addHash(this.sum, leaseHash(lease));
    this.heap.push(expiresAt, lease.id);
  }
}

function leaseHash(lease: Lease): Hash64 {
  return hashFields(["lease", lease.id, lease.ttlMs, lease.expiresAt]);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
