import { type KeyRange, type KeyValue, type KvEvent, type KvResult, type KvTest, type KvTxnOp, prefixEnd } from "../ops.js";

/**
 * Maps keys between a namespace and the whole key space: every key a scoped
 * client sends gets the prefix, every key it receives loses it, and an
 * open-ended range stops at the namespace's end. The empty namespace is the
 * identity.
 */
export class Namespace {
  private readonly end: string | undefined;

  constructor(readonly prefix: string) {
    this.end = prefixEnd(prefix);
  }

  key(key: string): string {
    return this.prefix + key;
  }

  /** A range inside the namespace; without `end`, up to the namespace's end. */
  range(range: KeyRange): KeyRange {
    if (range.end !== undefined) return { start: this.prefix + range.start, end: this.prefix + range.end };
    return this.end === undefined ? { start: this.prefix + range.start } : { start: this.prefix + range.start, end: this.end };
  }

  strip(key: string): string {
    return key.startsWith(this.prefix) ? key.slice(this.prefix.length) : key;
  }

  kv(kv: KeyValue): KeyValue {
    return this.prefix === "" ? kv : { ...kv, key: this.strip(kv.key) };
  }

  event(event: KvEvent): KvEvent {
    return this.prefix === "" ? event : { ...event, key: this.strip(event.key) };
  }

  op(op: KvTxnOp): KvTxnOp {
    if (this.prefix === "") return op;
    switch (op.type) {
      case "put":
      case "delete":
      case "get":
      case "incr":
        return { ...op, key: this.key(op.key) };
      case "delete-range":
      case "range": {
        const scoped = this.range(op.end === undefined ? { start: op.start } : { start: op.start, end: op.end });
        const { end: _end, ...rest } = op;
        return scoped.end === undefined ? { ...rest, start: scoped.start } : { ...rest, start: scoped.start, end: scoped.end };
      }
    }
  }

  test(test: KvTest): KvTest {
    if (this.prefix === "") return test;
    if (test.type === "compare" && test.end !== undefined) return { ...test, key: this.key(test.key), end: this.key(test.end) };
    return { ...test, key: this.key(test.key) };
  }

  result(result: KvResult): KvResult {
    if (this.prefix === "") return result;
    switch (result.type) {
      case "put":
        return result.prevKv === undefined ? result : { ...result, prevKv: this.kv(result.prevKv) };
      case "delete":
        return result.prevKvs === undefined ? result : { ...result, prevKvs: result.prevKvs.map((kv) => this.kv(kv)) };
      case "get":
        return result.kv === null ? result : { ...result, kv: this.kv(result.kv) };
      case "range": {
        const kvs = result.kvs.map((kv) => this.kv(kv));
        return result.next === undefined ? { ...result, kvs } : { ...result, kvs, next: this.strip(result.next) };
      }
      default:
        return result;
    }
  }
}
