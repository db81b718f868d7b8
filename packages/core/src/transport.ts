import type { NodeId } from "./ballot.js";
import type { Message } from "./messages.js";

/**
 * Best-effort delivery of messages between replicas. Paxos tolerates loss,
 * duplication and reordering, so `send` never throws and may drop. Every
 * implementation must pass the conformance suite in `@synod/core/testing`.
 */
export interface Transport {
  readonly id: NodeId;
  send(message: Message): void;
  /** Sets the one handler for incoming messages addressed to this node. */
  onMessage(handler: (message: Message) => void): void;
  close(): Promise<void>;
}
