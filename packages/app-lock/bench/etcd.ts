/**
 * The etcd side: the KV benchmark's 3-member etcd cluster (found, or
 * installed from Debian's `etcd-server`, and started with etcd's defaults),
 * driven with the `etcd3` client's lock: one `Etcd3` client per worker (or
 * one for all), and `client.lock(name).ttl(10).acquire()` / `.release()`.
 *
 * `etcd3`'s lock is a try-lock on a lease, and every acquire grants its own
 * lease: acquire is `LeaseGrant` (which also opens that lease's keepalive
 * stream), then a transaction putting the key with the lease if nobody
 * created it; release is `LeaseRevoke`, which deletes the key. A refused
 * acquire revokes its lease and throws `EtcdLockFailedError`; the worker then
 * tries again after a random pause drawn uniformly from [0, retryPauseMs)
 * (`etcd3` has no queue to wait in).
 */
import { readFileSync } from "node:fs";
import { Etcd3, EtcdLockFailedError } from "etcd3";
import { ensureEtcd, etcdVersion, startEtcdCluster } from "../../app-kv/bench/etcd.js";
import { sleep } from "../../app-kv/bench/processes.js";
import type { LockCluster, LockWorker, Workers } from "./load.js";

const LEASE_TTL_SECONDS = 10;

export { ensureEtcd, etcdVersion };

export async function startEtcdLockCluster(binary: string, directory: string, retryPauseMs: number): Promise<LockCluster> {
  const cluster = await startEtcdCluster(binary, directory);
  const clientUrls = cluster.serverPids.map(advertisedClientUrl);
  return {
    name: "etcd",
    serverPids: cluster.serverPids,
    openWorkers: async (count, shareClient) => openWorkers(clientUrls, count, shareClient, retryPauseMs),
    stop: () => cluster.stop(),
  };
}

/**
 * The client URL a member was started with, from its command line (Linux, as
 * the CPU figures are): the KV benchmark's cluster hands out KV clients, not
 * its URLs, and this way its start-up is reused rather than copied.
 */
function advertisedClientUrl(pid: number): string {
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  const flag = "--advertise-client-urls=";
  const url = argv.find((argument) => argument.startsWith(flag))?.slice(flag.length);
  if (url === undefined || url === "") throw new Error(`etcd member pid ${pid} has no ${flag} on its command line`);
  return url;
}

/**
 * `count` workers over an `Etcd3` client each, or one for all. A client
 * balances calls across the three members, as `etcd3` does by default; every
 * unary call has a 10 s deadline, as each Synod operation does.
 */
function openWorkers(clientUrls: readonly string[], count: number, shareClient: boolean, retryPauseMs: number): Workers {
  const clients = Array.from(
    { length: shareClient ? 1 : count },
    () => new Etcd3({ hosts: [...clientUrls], defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + 10_000 }) }),
  );
  const workers = Array.from({ length: count }, (_, index): LockWorker => {
    const client = clients[index % clients.length] as Etcd3;
    return {
      cycle: async (name) => {
        for (let refused = 0; ; refused += 1) {
          // Each acquire grants a fresh lease with this TTL, as `etcd3`'s lock does.
          const lock = client.lock(name).ttl(LEASE_TTL_SECONDS);
          try {
            await lock.acquire();
          } catch (error) {
            if (!(error instanceof EtcdLockFailedError)) throw error;
            await sleep(Math.random() * retryPauseMs);
            continue;
          }
          await lock.release();
          return refused;
        }
      },
    };
  });
  return {
    workers,
    close: async () => {
      for (const client of clients) client.close();
    },
  };
}
