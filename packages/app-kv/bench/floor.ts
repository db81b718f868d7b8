/**
 * The floor under a replicated durable write on this machine: the least any
 * leader-based protocol must do for one put at concurrency 1, with nothing
 * else. A client sends a 100-byte value over a WebSocket to a "leader"
 * process; the leader forwards it to two "follower" processes and appends it
 * to its own file; each appends and fdatasyncs, then answers; the leader
 * answers the client once its own write and one follower's are durable (a
 * majority of three). Raw `ws`, no validation, no log format, no consensus.
 *
 *   tsx bench/floor.ts [--seconds 5] [--sync]     (--sync: writeSync + fdatasyncSync instead of the thread pool)
 */
import { type ChildProcess, fork } from "node:child_process";
import { fdatasync, fdatasyncSync, mkdtempSync, openSync, rmSync, write, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePorts } from "@synod/testkit/processes";
import WebSocket, { WebSocketServer } from "ws";
import { Samples } from "@synod/testkit";

const role = process.env.FLOOR_ROLE;

function durable(fd: number, data: Buffer, sync: boolean, done: () => void): void {
  if (sync) {
    writeSync(fd, data);
    fdatasyncSync(fd);
    done();
    return;
  }
  write(fd, data, (error) => {
    if (error) throw error;
    fdatasync(fd, (syncError) => {
      if (syncError) throw syncError;
      done();
    });
  });
}

if (role === "follower" || role === "leader") {
  const port = Number(process.env.FLOOR_PORT);
  const sync = process.env.FLOOR_SYNC === "1";
  const fd = openSync(join(process.env.FLOOR_DIR as string, `${role}-${port}.log`), "a");
  const server = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
  if (role === "follower") {
    server.on("connection", (socket) => socket.on("message", (data) => durable(fd, data as Buffer, sync, () => socket.send((data as Buffer).subarray(0, 8)))));
  } else {
    const followers = (process.env.FLOOR_FOLLOWERS as string).split(",").map((url) => new WebSocket(url, { perMessageDeflate: false }));
    const pending = new Map<string, { votes: number; reply: () => void }>();
    const vote = (id: string) => {
      const entry = pending.get(id);
      if (entry === undefined) return;
      entry.votes += 1;
      if (entry.votes === 2) {
        pending.delete(id);
        entry.reply();
      }
    };
    for (const follower of followers) follower.on("message", (data) => vote((data as Buffer).toString()));
    server.on("connection", (socket) =>
      socket.on("message", (data) => {
        const id = (data as Buffer).subarray(0, 8).toString();
        pending.set(id, { votes: 0, reply: () => socket.send(id) });
        for (const follower of followers) follower.send(data);
        durable(fd, data as Buffer, sync, () => vote(id));
      }),
    );
    await Promise.all(followers.map((follower) => new Promise((resolve) => follower.once("open", resolve))));
  }
  process.send?.("ready");
} else {
  const { values } = parseArgs({ options: { seconds: { type: "string", default: "5" }, sync: { type: "boolean", default: false } } });
  const directory = mkdtempSync(join(tmpdir(), "synod-floor-"));
  const [leaderPort, followerA, followerB] = (await freePorts(3)) as [number, number, number];
  const children: ChildProcess[] = [];
  const start = (env: Record<string, string>) =>
    new Promise<void>((resolve) => {
      const child = fork(process.argv[1] as string, [], { env: { ...process.env, FLOOR_DIR: directory, FLOOR_SYNC: values.sync ? "1" : "0", ...env }, execArgv: process.execArgv });
      children.push(child);
      child.once("message", () => resolve());
    });
  try {
    await start({ FLOOR_ROLE: "follower", FLOOR_PORT: String(followerA) });
    await start({ FLOOR_ROLE: "follower", FLOOR_PORT: String(followerB) });
    await start({ FLOOR_ROLE: "leader", FLOOR_PORT: String(leaderPort), FLOOR_FOLLOWERS: `ws://127.0.0.1:${followerA},ws://127.0.0.1:${followerB}` });
    const client = new WebSocket(`ws://127.0.0.1:${leaderPort}`, { perMessageDeflate: false });
    await new Promise((resolve) => client.once("open", resolve));
    const value = "x".repeat(100);
    const samples = new Samples();
    const deadline = performance.now() + Number(values.seconds) * 1000;
    for (let n = 0; performance.now() < deadline; n += 1) {
      const id = String(n % 1e8).padStart(8, "0");
      const began = performance.now();
      await new Promise<void>((resolve) => {
        client.once("message", () => resolve());
        client.send(`${id}${value}`);
      });
      samples.push(performance.now() - began);
    }
    client.close();
    console.log(`floor (${values.sync ? "sync" : "thread-pool"} fdatasync): ${samples.length} puts, p50 ${samples.percentile(50).toFixed(3)} ms, p99 ${samples.percentile(99).toFixed(3)} ms`);
  } finally {
    for (const child of children) child.kill("SIGKILL");
    rmSync(directory, { recursive: true, force: true });
  }
}
