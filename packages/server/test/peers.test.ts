/**
 * Whom a server dials and accepts: the newest configuration's members, and
 * the leader it last followed even when the configuration it has reached
 * leaves that leader out (a replica catching up through a removal that a
 * later configuration, led by the removed replica, undoes).
 */
import { expect, it } from "vitest";
import { peersToReach } from "../src/peers.js";

const urls = new Map([
  ["n1", "ws://127.0.0.1:7001"],
  ["n2", "ws://127.0.0.1:7002"],
  ["n3", "ws://127.0.0.1:7003"],
]);

it("reaches the members of the configuration, with their addresses", () => {
  expect(peersToReach(["n1", "n2", "n3"], undefined, urls)).toEqual([
    { id: "n1", url: "ws://127.0.0.1:7001" },
    { id: "n2", url: "ws://127.0.0.1:7002" },
    { id: "n3", url: "ws://127.0.0.1:7003" },
  ]);
  expect(peersToReach(["n1", "n3"], "n3", urls).map((peer) => peer.id)).toEqual(["n1", "n3"]);
});

it("keeps reaching the leader it follows when the configuration it has reached leaves that leader out", () => {
  // n1 catches up through "n2 removed" while n2, added back later, leads and sends it the rest.
  expect(peersToReach(["n1", "n3"], "n2", urls).map((peer) => peer.id)).toEqual(["n1", "n3", "n2"]);
});

it("leaves out a replica whose address it never learned", () => {
  expect(peersToReach(["n1", "n4"], "n5", urls).map((peer) => peer.id)).toEqual(["n1"]);
});
