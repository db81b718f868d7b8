import { runTransportConformance } from "@synod/core/testing";
import { SynodServer, WsTransport, silentLogger } from "../src/index.js";

runTransportConformance("WsTransport", {
  create: async (ids) => {
    const transports = new Map<string, WsTransport>();
    const servers: SynodServer[] = [];
    const urls = new Map<string, string>();
    for (const id of ids) {
      const server = new SynodServer({
        self: id,
        clusterId: "conformance",
        host: "127.0.0.1",
        port: 0,
        peers: ids,
        secret: "conformance-secret",
        logger: silentLogger,
        onPeerMessage: (message) => transports.get(id)?.deliver(message),
      });
      urls.set(id, `ws://127.0.0.1:${await server.listen()}`);
      servers.push(server);
    }
    for (const id of ids) {
      const peers = ids.map((peer) => ({ id: peer, url: urls.get(peer) as string }));
      transports.set(id, new WsTransport({ self: id, clusterId: "conformance", peers, secret: "conformance-secret", logger: silentLogger }));
    }
    return {
      transports,
      close: async () => {
        for (const transport of transports.values()) await transport.close();
        for (const server of servers) await server.close();
      },
    };
  },
});
