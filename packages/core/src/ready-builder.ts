import type { Ballot, NodeId } from "./ballot.js";
import type { SynodError } from "./errors.js";
import type { Message } from "./messages.js";
import type { AbortedCommand, Ready, ReadyRead } from "./replica-types.js";
import type { ChosenEntry, Command, SlotRecord } from "./values.js";

/**
 * Everything a replica produced since its last `Ready`: writes to make
 * durable, messages (those that may leave at once and those that vouch for
 * the writes), and answers for clients. The replica fills it; `take` hands it
 * over as one `Ready` and starts afresh.
 */
export class ReadyBuilder {
  private promised: Ballot | undefined;
  private readonly records = new Map<number, SlotRecord>();
  private readonly chosenMarks = new Set<number>();
  private truncateBefore: number | undefined;
  private rebuilt = false;
  private messages: Message[] = [];
  private messagesAfterPersist: Message[] = [];
  private selfAfterPersist: Message[] = [];
  private aborted: AbortedCommand[] = [];
  private reads: ReadyRead[] = [];
  private failedReads: { id: number; error: SynodError }[] = [];

  constructor(private readonly self: NodeId) {}

  /** A message that promises nothing about local state: it may leave before the writes are durable. */
  send(message: Message): void {
    this.messages.push(message);
  }

  /** A reply that vouches for written state: it leaves (or, to this replica, is stepped) only once the writes are durable. */
  sendAfterPersist(message: Message): void {
    if (message.to === this.self) this.selfAfterPersist.push(message);
    else this.messagesAfterPersist.push(message);
  }

  persistPromise(ballot: Ballot): void {
    this.promised = ballot;
  }

  /** The replica finished rebuilding: storage must stop saying it is rebuilding. */
  persistRebuilt(): void {
    this.rebuilt = true;
  }

  persistRecord(record: SlotRecord): void {
    this.records.set(record.slot, record);
  }

  /** Marks a slot's written record chosen; folded into a pending record of the same slot. */
  persistChosenMark(slot: number): void {
    const pending = this.records.get(slot);
    if (pending !== undefined) this.records.set(slot, { ...pending, chosen: true });
    else this.chosenMarks.add(slot);
  }

  /** Drops pending writes below `slot` and asks the storage to drop its records there too. */
  truncate(beforeSlot: number): void {
    for (const slot of this.records.keys()) if (slot < beforeSlot) this.records.delete(slot);
    for (const slot of this.chosenMarks) if (slot < beforeSlot) this.chosenMarks.delete(slot);
    this.truncateBefore = beforeSlot;
  }

  abort(command: Command, error: SynodError): void {
    this.aborted.push({ command, error });
  }

  readReady(read: ReadyRead): void {
    this.reads.push(read);
  }

  readFailed(id: number, error: SynodError): void {
    this.failedReads.push({ id, error });
  }

  isEmpty(): boolean {
    return (
      this.messages.length === 0 &&
      this.messagesAfterPersist.length === 0 &&
      this.selfAfterPersist.length === 0 &&
      this.promised === undefined &&
      this.records.size === 0 &&
      this.chosenMarks.size === 0 &&
      this.truncateBefore === undefined &&
      !this.rebuilt &&
      this.aborted.length === 0 &&
      this.reads.length === 0 &&
      this.failedReads.length === 0
    );
  }

  /** Hands over everything gathered, with the newly chosen entries, and starts afresh. */
  take(chosen: readonly ChosenEntry[]): Ready {
    const ready: Ready = {
      persist: {
        promised: this.promised,
        records: [...this.records.values()],
        chosen: [...this.chosenMarks],
        truncateBefore: this.truncateBefore,
        ...(this.rebuilt ? { rebuilt: true as const } : {}),
      },
      messages: this.messages,
      messagesAfterPersist: this.messagesAfterPersist,
      chosen,
      reads: this.reads,
      failedReads: this.failedReads,
      aborted: this.aborted,
      selfAfterPersist: this.selfAfterPersist,
    };
    this.promised = undefined;
    this.records.clear();
    this.chosenMarks.clear();
    this.truncateBefore = undefined;
    this.rebuilt = false;
    this.messages = [];
    this.messagesAfterPersist = [];
    this.selfAfterPersist = [];
    this.aborted = [];
    this.reads = [];
    this.failedReads = [];
    return ready;
  }
}
