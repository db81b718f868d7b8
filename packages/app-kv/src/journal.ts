/**
 * An undo log for one command. Core applies the operations of a MultiOp
 * branch with one `apply` call each; if a later one fails (quota, a missing
 * lease, a value that is not a number) the earlier ones must not stay applied,
 * or a transaction would be half done. Every mutation of the store records its
 * inverse here; on failure they run newest first.
 */
export class Journal {
  private readonly undos: (() => void)[] = [];

  record(undo: () => void): void {
    this.undos.push(undo);
  }

  /** Undoes every recorded mutation, newest first, and forgets them. */
  rollback(): void {
    for (let undo = this.undos.pop(); undo !== undefined; undo = this.undos.pop()) undo();
  }

  /** Forgets the recorded mutations: they are final. */
  clear(): void {
    this.undos.length = 0;
  }

  get size(): number {
    return this.undos.length;
  }
}
