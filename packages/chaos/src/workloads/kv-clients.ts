import { KvClient, KvOperationError } from "@synod/app-kv";
import { ClientError } from "@synod/transport-ws";

/** A KV error's meaning for the history: refused by the store (`fail`: it did not take effect), or no answer (`unknown`: it may have). */
export function classifyKvError(error: unknown): "fail" | "unknown" | undefined {
  if (error instanceof KvOperationError) return "fail";
  if (error instanceof ClientError) return "unknown";
  return undefined;
}

/**
 * `count` workers' clients over every replica: half give up on an operation
 * after 5 s, half after 1.5 s, so some operations end unknown mid-fault and
 * some ride the fault out.
 */
export function kvWorkerClients(urls: readonly string[], count: number): KvClient[] {
  return Array.from({ length: count }, (_, worker) => new KvClient({ urls: [...urls], requestTimeoutMs: 500, operationTimeoutMs: worker % 2 === 0 ? 5_000 : 1_500 }));
}

/**
 * One client per replica that knows only that replica, as a client running
 * beside it would: it goes back to its replica after every failure (it still
 * follows a leader hint), so when that replica is a deposed leader that
 * does not know it yet, this client is still asking it.
 */
export function kvLocalClients(urls: readonly string[]): KvClient[] {
  return urls.map((url) => new KvClient({ urls: [url], requestTimeoutMs: 500, operationTimeoutMs: 1_500 }));
}

/** A client for the reads after the faults healed: patient. */
export function kvFinalClient(urls: readonly string[]): KvClient {
  return new KvClient({ urls: [...urls], requestTimeoutMs: 1_000, operationTimeoutMs: 15_000 });
}
