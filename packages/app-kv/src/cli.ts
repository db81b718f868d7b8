#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { CLIENT_FLAGS, SERVE_FLAGS, UsageError, clientTarget, configFromServeFlags, exitOnError, integerFlag, MEMBERS_FLAGS, MEMBERS_USAGE, membersCommand, parseFlags, stopOnSignals } from "@synod/server";
import { KvClient } from "./client/kv-client.js";
import type { KvTest, KvTxnOp } from "./ops.js";
import { startKvServer } from "./service/serve.js";

const USAGE = `synod-kv: a replicated key-value store on Synod (Multi-Paxos)

Run a replica:
  synod-kv serve --id n1 --members n1=ws://127.0.0.1:7401,n2=ws://127.0.0.1:7402,n3=ws://127.0.0.1:7403 --data-dir ./data/n1
  synod-kv serve --config replica.json        (the JSON of the server's configuration, with an optional "kv" section;
                                               flags given as well override the file)
  serve flags: --id ID  --members ID=URL,...  --data-dir DIR  --listen HOST:PORT  --cluster-id NAME
               --secret SECRET (or SYNOD_SECRET)  --rejoin  --join (a new replica of a running cluster)  --tick-ms N  --log-level debug|info|warn|error
               --snapshot-every-slots N  --snapshot-every-bytes N  --snapshot-tail-slots N  --snapshot-chunk-bytes N
               --lease-ms N (master lease; 0: a read-index round per read)  --max-clock-drift F (the clock bound leases assume, default 0.01)
               --quota-bytes N  --max-value-bytes N  --retain-revisions N

Talk to a cluster (endpoints: --endpoints URL,... or SYNOD_ENDPOINTS; default ws://127.0.0.1:7401):
  synod-kv get KEY [--serializable] [--revision N] [--json]
  synod-kv put KEY VALUE [--lease ID] [--prev-kv]
  synod-kv del KEY [--prefix] [--prev-kv]
  synod-kv range START [END] | --prefix P  [--limit N] [--keys-only] [--count-only] [--revision N] [--serializable]
  synod-kv txn '{"if":[...],"then":[...],"else":[...]}'   (or - to read it from stdin)
  synod-kv incr KEY [DELTA]
  synod-kv watch KEY | --prefix P  [--from-revision N]     (JSON lines until interrupted)
  synod-kv lease grant TTL_MS | lease keepalive ID | lease revoke ID | lease info ID
  synod-kv compact REVISION
  synod-kv status
  synod-kv members list | add ID=URL [--learner] | remove ID | promote ID | replace OLD NEW=URL
${MEMBERS_USAGE}
  common flags: --endpoints URL,...  --token TOKEN (or SYNOD_TOKEN)  --namespace PREFIX  --timeout MS

Exit status: 0 done, 1 the cluster refused or failed the request (the error's code is printed), 2 bad usage.
`;

const options = {
  help: { type: "boolean", short: "h" },
  ...SERVE_FLAGS,
  ...MEMBERS_FLAGS,
  "quota-bytes": { type: "string" },
  "max-value-bytes": { type: "string" },
  "retain-revisions": { type: "string" },
  ...CLIENT_FLAGS,
  namespace: { type: "string" },
  timeout: { type: "string" },
  serializable: { type: "boolean" },
  revision: { type: "string" },
  json: { type: "boolean" },
  lease: { type: "string" },
  "prev-kv": { type: "boolean" },
  prefix: { type: "string" },
  limit: { type: "string" },
  "keys-only": { type: "boolean" },
  "count-only": { type: "boolean" },
  "from-revision": { type: "string" },
} as const;

type Flags = ReturnType<typeof parse>["values"];

const parse = (argv: string[]) => parseFlags(argv, options);

function integer(flags: Flags, name: keyof Flags): number | undefined {
  return integerFlag(name, flags[name]);
}

function need(positionals: string[], index: number, what: string): string {
  const value = positionals[index];
  if (value === undefined) throw new UsageError(`missing ${what}`);
  return value;
}

async function serve(flags: Flags): Promise<void> {
  const config = configFromServeFlags(flags);
  const kv: Record<string, unknown> = { ...(config.kv as Record<string, unknown> | undefined) };
  for (const [flag, field] of [
    ["quota-bytes", "quotaBytes"],
    ["max-value-bytes", "maxValueBytes"],
    ["retain-revisions", "retainRevisions"],
  ] as const) {
    const value = integer(flags, flag);
    if (value !== undefined) kv[field] = value;
  }
  config.kv = kv;
  const running = await startKvServer(config);
  stopOnSignals(running);
  process.stdout.write(`synod-kv ${running.config.id} ready on port ${running.port}\n`);
}

function clientFrom(flags: Flags): KvClient {
  const timeout = integer(flags, "timeout");
  return new KvClient({
    ...clientTarget(flags, "ws://127.0.0.1:7401"),
    ...(flags.namespace === undefined ? {} : { namespace: flags.namespace }),
    ...(timeout === undefined ? {} : { operationTimeoutMs: timeout, requestTimeoutMs: Math.min(timeout, 5_000) }),
  });
}

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

async function runClient(command: string, positionals: string[], flags: Flags): Promise<void> {
  const kv = clientFrom(flags);
  const revision = integer(flags, "revision");
  const read = { ...(flags.serializable === true ? { serializable: true } : {}), ...(revision === undefined ? {} : { revision }) };
  try {
    switch (command) {
      case "get": {
        const kvPair = await kv.get(need(positionals, 1, "KEY"), read);
        if (flags.json === true) print(kvPair);
        else if (kvPair === null) process.exitCode = 1;
        else process.stdout.write(`${kvPair.value}\n`);
        return;
      }
      case "put": {
        const lease = integer(flags, "lease");
        print(await kv.put(need(positionals, 1, "KEY"), need(positionals, 2, "VALUE"), { ...(lease === undefined ? {} : { lease }), ...(flags["prev-kv"] === true ? { prevKv: true } : {}) }));
        return;
      }
      case "del": {
        const prevKv = flags["prev-kv"] === true ? { prevKv: true } : {};
        print(flags.prefix !== undefined ? await kv.deleteRange({ prefix: flags.prefix }, prevKv) : await kv.delete(need(positionals, 1, "KEY"), prevKv));
        return;
      }
      case "range": {
        const keys = flags.prefix !== undefined ? { prefix: flags.prefix } : positionals[2] === undefined ? { start: need(positionals, 1, "START") } : { start: need(positionals, 1, "START"), end: positionals[2] };
        const limit = integer(flags, "limit");
        print(
          await kv.range(keys, {
            ...read,
            ...(limit === undefined ? {} : { limit }),
            ...(flags["keys-only"] === true ? { keysOnly: true } : {}),
            ...(flags["count-only"] === true ? { countOnly: true } : {}),
          }),
        );
        return;
      }
      case "txn": {
        const source = need(positionals, 1, "the transaction JSON (or -)");
        const text = source === "-" ? readFileSync(0, "utf8") : source;
        let spec: { if?: KvTest[]; then?: KvTxnOp[]; else?: KvTxnOp[] };
        try {
          spec = JSON.parse(text);
        } catch (error) {
          throw new UsageError(`the transaction is not JSON: ${(error as Error).message}`);
        }
        print(await kv.txn(spec));
        return;
      }
      case "incr":
        print(await kv.increment(need(positionals, 1, "KEY"), positionals[2] ?? 1));
        return;
      case "watch": {
        const keys = flags.prefix !== undefined ? { prefix: flags.prefix } : need(positionals, 1, "KEY (or --prefix P)");
        const fromRevision = integer(flags, "from-revision");
        const abort = new AbortController();
        process.once("SIGINT", () => abort.abort());
        process.once("SIGTERM", () => abort.abort());
        for await (const batch of kv.watch(keys, { signal: abort.signal, ...(fromRevision === undefined ? {} : { fromRevision }) })) {
          for (const event of batch.events) print(event);
        }
        return;
      }
      case "lease": {
        const action = need(positionals, 1, "grant, keepalive, revoke or info");
        const argument = Number(need(positionals, 2, action === "grant" ? "TTL_MS" : "ID"));
        if (!Number.isSafeInteger(argument) || argument <= 0) throw new UsageError(`${positionals[2]} is not a positive integer`);
        if (action === "grant") print(await kv.grantLease(argument));
        else if (action === "keepalive") print(await kv.keepAlive(argument));
        else if (action === "revoke") print(await kv.revokeLease(argument));
        else if (action === "info") print(await kv.leaseInfo(argument));
        else throw new UsageError(`unknown lease action ${JSON.stringify(action)}`);
        return;
      }
      case "compact": {
        const target = Number(need(positionals, 1, "REVISION"));
        if (!Number.isSafeInteger(target) || target < 0) throw new UsageError(`${positionals[1]} is not a revision`);
        print({ compactRevision: await kv.compact(target) });
        return;
      }
      case "status":
        print({ store: await kv.status(), replica: await kv.replicaStatus() });
        return;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } finally {
    await kv.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const { values: flags, positionals } = parse(argv);
  const command = positionals[0];
  if (flags.help === true || command === undefined || command === "help") {
    process.stdout.write(USAGE);
    return;
  }
  if (command === "serve") return serve(flags);
  if (command === "members") {
    print(await membersCommand(positionals.slice(1), flags, clientTarget(flags, "ws://127.0.0.1:7401")));
    return;
  }
  return runClient(command, positionals, flags);
}

main(process.argv.slice(2)).catch((error: unknown) => exitOnError("synod-kv", error));
