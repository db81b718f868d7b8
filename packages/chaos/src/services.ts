import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { KvClient } from "@synod/app-kv";
import { SynodClient } from "@synod/transport-ws";
import { bundleScript } from "@synod/testkit/processes";
import { AppendWorkload } from "./workloads/append.js";
import { BankWorkload } from "./workloads/bank.js";
import { LockWorkload } from "./workloads/locks.js";
import { RegisterWorkload } from "./workloads/registers.js";
import type { Workload, WorkloadContext } from "./workloads/workload.js";

/** A bundled service a campaign runs as real processes, with the workloads that exercise it. */
export interface ServiceUnderTest {
  /** `kv` or `lock`: what `--service` names. */
  readonly name: ServiceName;
  /** What the report calls it. */
  readonly title: string;
  /** The service's CLI, bundled once per process (its `serve` command runs a replica). */
  script(): Promise<string>;
  /** Its workloads, each with clients of its own. */
  workloads(context: WorkloadContext): Workload[];
  /** One replica's applied state, read from it alone (locally), rendered for comparison with the others'. */
  localState(url: string): Promise<string>;
}

export const SERVICE_NAMES = ["kv", "lock"] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

const bundles = new Map<string, Promise<string>>();

/** `package`'s CLI (`src/cli.ts`), bundled beside this package's own dependencies (native helpers stay external). */
function bundled(packageName: string, output: string): Promise<string> {
  let script = bundles.get(packageName);
  if (script === undefined) {
    const require = createRequire(import.meta.url);
    const root = dirname(require.resolve(`${packageName}/package.json`));
    const here = dirname(require.resolve("@synod/chaos/package.json"));
    script = bundleScript(join(root, "src", "cli.ts"), join(here, ".build", output));
    bundles.set(packageName, script);
  }
  return script;
}

/** app-kv: registers with compare-and-set, append-only lists, and bank transfers as MultiOps. */
const kv: ServiceUnderTest = {
  name: "kv",
  title: "app-kv",
  script: () => bundled("@synod/app-kv", "synod-kv.mjs"),
  workloads: (context) => [new RegisterWorkload(context), new AppendWorkload(context), new BankWorkload(context)],
  async localState(url) {
    const client = new KvClient({ urls: [url], requestTimeoutMs: 1_000, operationTimeoutMs: 3_000 });
    try {
      const range = await client.range({ prefix: "" }, { serializable: true });
      return JSON.stringify(range.kvs.map((kv) => [kv.key, kv.value, kv.modRevision]));
    } finally {
      await client.close();
    }
  },
};

/** app-lock: locks with fencing, sessions that expire under pauses. */
const lock: ServiceUnderTest = {
  name: "lock",
  title: "app-lock",
  script: () => bundled("@synod/app-lock", "synod-lock.mjs"),
  workloads: (context) => [new LockWorkload(context)],
  async localState(url) {
    const client = new SynodClient({ urls: [url], requestTimeoutMs: 1_000, operationTimeoutMs: 3_000 });
    try {
      // Who holds and waits for what, and the tokens: sessions' deadlines are each replica's own clock's.
      const locks = await client.readLocal<readonly { name: string; holders: unknown; waiters: unknown; highestToken: number }[]>({ type: "locks" });
      return JSON.stringify(locks.value.map((entry) => [entry.name, entry.holders, entry.waiters, entry.highestToken]));
    } finally {
      await client.close();
    }
  },
};

export const SERVICES: Readonly<Record<ServiceName, ServiceUnderTest>> = { kv, lock };
