import type { NodeId } from "../ballot.js";
import type { Message } from "../messages.js";
import type { Transport } from "../transport.js";

/**
 * An in-process network of transports, for tests, demos and benchmarks.
 * Delivery is asynchronous (a macrotask), in order per link, and can be cut
 * per link to model partitions.
 */
export class MemoryNetwork {
  private readonly handlers = new Map<NodeId, (message: Message) => void>();
  private readonly cut = new Set<string>();
  private queue: Message[] = [];
  private scheduled = false;
  delivered = 0;

  transport(id: NodeId): Transport {
    // biome-ignore lint/complexity/noUselessThisAlias: closures below need the network
    const network = this;
    return {
      id,
      send: (message) => network.enqueue(message),
      onMessage: (handler) => {
        network.handlers.set(id, handler);
      },
      close: async () => {
        network.handlers.delete(id);
      },
    };
  }

  /** Drops every message from `from` to `to` until `heal`. */
  partition(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}\u0000${to}`);
  }

  /** Cuts `node` off from everyone, both ways. */
  isolate(node: NodeId, others: readonly NodeId[]): void {
    for (const other of others) {
      if (other === node) continue;
      this.partition(node, other);
      this.partition(other, node);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  private enqueue(message: Message): void {
    if (this.cut.has(`${message.from}\u0000${message.to}`)) return;
    this.queue.push(message);
    if (!this.scheduled) {
      this.scheduled = true;
      // A macrotask, so timers get their turn; setImmediate where the runtime
      // has it (Node, Bun: no 1 ms clamp), else setTimeout.
      if (typeof setImmediate === "function") setImmediate(() => this.flush());
      else setTimeout(() => this.flush(), 0);
    }
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const message of batch) {
      this.handlers.get(message.to)?.(message);
      this.delivered += 1;
    }
  }
}
