import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KvClient, compare, startKvServer } from "@synod/app-kv";

// Three replicas in one process, each with its own data directory (in production: one `synod-kv serve` per machine).
const dataDir = mkdtempSync(join(tmpdir(), "synod-kv-"));
const members = [1, 2, 3].map((n) => ({ id: `n${n}`, url: `ws://127.0.0.1:${7410 + n}` }));
const replicas = await Promise.all(members.map(({ id }) => startKvServer({ id, members, dataDir: join(dataDir, id), logLevel: "warn" })));

const kv = new KvClient({ urls: members.map((member) => member.url) });
const watch = kv.watch({ prefix: "config/" }); // every change under config/, in order, across reconnects
void (async () => {
  for await (const { revision, events } of watch) for (const event of events) console.log(`watch @${revision}: ${event.type} ${event.key}`);
})();

await kv.put("config/mode", "blue");
console.log(await kv.get("config/mode")); // { key: 'config/mode', value: 'blue', createRevision: 2, modRevision: 2, version: 1, lease: 0 }
console.log(await kv.compareAndSet("config/mode", "blue", "green")); // { succeeded: true, ... }
const { succeeded } = await kv.txn({
  if: [compare.value("config/mode", "equal", "green")],
  then: [{ type: "put", key: "config/a", value: "1" }, { type: "put", key: "config/b", value: "2" }], // one revision, one watch batch
});
console.log("txn succeeded:", succeeded, "counter:", (await kv.increment("visits")).value); // exactly once, even if retried
const lease = await kv.lease(2_000); // kept alive in the background until stopped
await kv.put("config/owner", "me", { lease: lease.id });
lease.stop(); // the key goes about 2 s later, with a delete event
await new Promise((resolve) => setTimeout(resolve, 3_000));
console.log(await kv.range({ prefix: "config/" }, { keysOnly: true, serializable: true }));

watch.close();
await kv.close();
await Promise.all(replicas.map((replica) => replica.stop()));
