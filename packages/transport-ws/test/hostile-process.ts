/**
 * A replica endpoint in its own process, for inputs that may crash a process
 * (an exception thrown from a socket event handler is uncaught): the test
 * runner's worker must not be the one that dies.
 *
 *   hostile-process.ts listener          SynodServer "a" (peers a, b); prints "PORT <n>"
 *   hostile-process.ts dialer <url>      PeerLink "a" → "b" at <url>; prints "DIALING"
 *
 * Secret: "hostile-process-secret", cluster id "hostile". Exits when its
 * stdin closes (the parent went away) and never otherwise on its own.
 */
import { PeerLink, SynodServer, silentLogger } from "../src/index.js";

export const HOSTILE_PROCESS_SECRET = "hostile-process-secret";
export const HOSTILE_PROCESS_CLUSTER = "hostile";

async function main(): Promise<void> {
  const [mode, url] = process.argv.slice(2);
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
  if (mode === "listener") {
    const server = new SynodServer({
      self: "a",
      clusterId: HOSTILE_PROCESS_CLUSTER,
      host: "127.0.0.1",
      port: 0,
      peers: ["a", "b"],
      secret: HOSTILE_PROCESS_SECRET,
      logger: silentLogger,
      onPeerMessage: () => undefined,
    });
    process.stdout.write(`PORT ${await server.listen()}\n`);
  } else if (mode === "dialer" && url !== undefined) {
    const link = new PeerLink({ self: "a", peer: "b", url, clusterId: HOSTILE_PROCESS_CLUSTER, secret: HOSTILE_PROCESS_SECRET, logger: silentLogger });
    link.send({ type: "heartbeat", from: "a", to: "b", ballot: { round: 1, node: "a" }, firstUnchosen: 0, round: 1, logTime: 0 });
    process.stdout.write("DIALING\n");
  } else {
    throw new Error(`usage: hostile-process.ts listener | dialer <url>`);
  }
}

// Only when run as a script (the tests import the constants).
if (process.argv[1]?.endsWith("hostile-process.ts")) void main();
