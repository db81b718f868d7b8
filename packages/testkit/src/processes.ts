/**
 * Helpers for tests and benchmarks that run Synod as real processes on
 * loopback: bundle a TypeScript entry once so each process starts with plain
 * `node` (tens of milliseconds, not a TypeScript loader's hundreds), and find
 * free ports.
 */
import { mkdirSync, renameSync } from "node:fs";
import { type Server, createServer } from "node:net";
import { dirname } from "node:path";
import { build } from "esbuild";

/**
 * Bundles `entry` (TypeScript, workspace packages resolved to their sources)
 * into one ESM file at `outfile` for Node 20. Native modules and the optional
 * native helpers of `ws` stay external: `outfile` must sit where Node can
 * resolve `@node-rs/crc32` (inside a package that depends on it). Written
 * to a temporary name and renamed, so concurrent test workers bundling the
 * same entry never see a half-written file.
 */
export async function bundleScript(entry: string, outfile: string): Promise<string> {
  mkdirSync(dirname(outfile), { recursive: true });
  await build({
    entryPoints: [entry],
    outfile: `${outfile}.${process.pid}.tmp`,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    conditions: ["@synod/source"],
    external: ["@node-rs/crc32", "bufferutil", "utf-8-validate"],
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    logLevel: "error",
  });
  renameSync(`${outfile}.${process.pid}.tmp`, outfile);
  return outfile;
}

/**
 * `count` distinct free TCP ports on loopback. All listeners are open at
 * once, so the OS cannot hand out the same port twice; the short race until a
 * process binds a port is acceptable in tests and benchmarks.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let index = 0; index < count; index += 1) {
      const server = createServer();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => {
            const address = server.address();
            resolve(typeof address === "object" && address !== null ? address.port : 0);
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

/** One free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0] as number;
}
