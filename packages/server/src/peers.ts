/**
 * The replicas a server dials and accepts: the members of the configuration
 * chosen last, as this replica knows it, and the leader it last followed.
 *
 * A replica catching up applies old configurations on its way to the
 * newest. One of them may leave out a replica that a later one brings back
 * and that leads now; that leader is the one to send it the later
 * configuration, and refusing it would leave the replica behind for good
 * (found by the fault campaign: a replica removed and added back, then
 * another replica's disk lost). So the leader this replica follows stays
 * reachable whatever the configuration it has reached says, until it follows
 * another.
 */
export function peersToReach(members: readonly string[], followed: string | undefined, urls: ReadonlyMap<string, string>): { readonly id: string; readonly url: string }[] {
  const ids = followed === undefined || members.includes(followed) ? members : [...members, followed];
  return ids.flatMap((id) => {
    const url = urls.get(id);
    return url === undefined ? [] : [{ id, url }];
  });
}
