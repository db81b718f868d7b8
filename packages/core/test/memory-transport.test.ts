import { MemoryNetwork } from "../src/index.js";
import { runTransportConformance } from "../src/testing/index.js";

runTransportConformance("MemoryNetwork", {
  create: async (ids) => {
    const network = new MemoryNetwork();
    const transports = new Map(ids.map((id) => [id, network.transport(id)]));
    return { transports, close: async () => Promise.all([...transports.values()].map((transport) => transport.close())).then(() => undefined) };
  },
});
