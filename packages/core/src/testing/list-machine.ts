import type { StateMachine } from "../host.js";

/**
 * The smallest useful state machine, for tests of drivers, storages and
 * transports: it appends numbers to a list. `apply` returns the new length,
 * a MultiOp guard holds when the list has exactly that length, and queries
 * return the list. It counts applies and records what a restore brought back.
 */
export class ListMachine implements StateMachine<number, number, number, "all", number[]> {
  items: number[] = [];
  /** How many operations were applied (a retried duplicate is not). */
  applies = 0;
  /** The list as the last `restore` left it, if any. */
  restored: number[] | undefined;

  apply(op: number): number {
    this.applies += 1;
    this.items.push(op);
    return this.items.length;
  }

  test(expectedLength: number): boolean {
    return this.items.length === expectedLength;
  }

  query(): number[] {
    return [...this.items];
  }

  snapshot(): () => Uint8Array | PromiseLike<Uint8Array> {
    const copy = [...this.items];
    return () => new TextEncoder().encode(JSON.stringify(copy));
  }

  restore(data: Uint8Array): void {
    this.items = JSON.parse(new TextDecoder().decode(data)) as number[];
    this.restored = [...this.items];
  }

  digest(): string {
    return this.items.join(",");
  }
}
