import { type Command, commandSize } from "./values.js";

/** A batch cut from the queue: the commands for one slot and their estimated size. */
export interface CutBatch {
  readonly commands: readonly Command[];
  readonly bytes: number;
}

/**
 * Client commands waiting at the leader for a slot, cut into batches bounded
 * in count and bytes. A single command larger than the byte bound still gets
 * a batch of its own.
 */
export class ProposalQueue {
  private commands: Command[] = [];
  private head = 0;

  get size(): number {
    return this.commands.length - this.head;
  }

  push(command: Command): void {
    this.commands.push(command);
  }

  /** Takes the next batch, or undefined when the queue is empty. */
  cut(maxCommands: number, maxBytes: number): CutBatch | undefined {
    if (this.head >= this.commands.length) return undefined;
    const commands: Command[] = [];
    let bytes = 0;
    while (this.head < this.commands.length && commands.length < maxCommands) {
      const command = this.commands[this.head] as Command;
      const size = commandSize(command);
      if (commands.length > 0 && bytes + size > maxBytes) break;
      commands.push(command);
      bytes += size;
      this.head += 1;
    }
    this.compact();
    return { commands, bytes };
  }

  /** Empties the queue, returning what was in it. */
  drain(): Command[] {
    const rest = this.commands.slice(this.head);
    this.commands = [];
    this.head = 0;
    return rest;
  }

  private compact(): void {
    if (this.head === this.commands.length) {
      this.commands = [];
      this.head = 0;
    } else if (this.head > 4096) {
      this.commands.splice(0, this.head);
      this.head = 0;
    }
  }
}
