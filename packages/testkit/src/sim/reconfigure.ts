import type { ConfigChange, Configuration, SeededRandom } from "@synod/core";

/**
 * The membership nemesis: a random change to `config` over the replicas in
 * `pool`. Add a learner, promote one (or an outsider straight to voter),
 * remove a member (the leader's seat too), replace a voter, or now and then
 * a whole new configuration of 1 to `pool.length` voters with some of the
 * rest as learners. Undefined when the drawn kind does not apply.
 */
export function randomConfigChange(config: Configuration, pool: readonly string[], random: SeededRandom): ConfigChange | undefined {
  const voters = [...config.voters];
  const learners = [...config.learners];
  const members = new Set([...voters, ...learners]);
  const outsiders = pool.filter((id) => !members.has(id));
  const pick = <T>(items: readonly T[]): T | undefined => (items.length === 0 ? undefined : items[random.integer(items.length)]);
  const without = (items: readonly string[], item: string) => items.filter((other) => other !== item);
  const draw = random.integer(11);
  if (draw < 3) {
    const added = pick(outsiders);
    return added === undefined ? undefined : { expected: config.id, voters, learners: [...learners, added] };
  }
  if (draw < 6) {
    const promoted = pick(learners) ?? pick(outsiders);
    if (promoted === undefined || voters.length >= 7) return undefined;
    return { expected: config.id, voters: [...voters, promoted], learners: without(learners, promoted) };
  }
  if (draw < 8) {
    const removed = pick([...voters, ...learners]);
    if (removed === undefined || (voters.length === 1 && voters[0] === removed)) return undefined;
    return { expected: config.id, voters: without(voters, removed), learners: without(learners, removed) };
  }
  if (draw < 10) {
    const out = pick(voters);
    const into = pick([...learners, ...outsiders]);
    if (out === undefined || into === undefined) return undefined;
    return { expected: config.id, voters: [...without(voters, out), into], learners: without(learners, into) };
  }
  const shuffled = [...pool];
  for (let index = shuffled.length - 1; index > 0; index -= 1) {
    const other = random.integer(index + 1);
    [shuffled[index], shuffled[other]] = [shuffled[other] as string, shuffled[index] as string];
  }
  const count = 1 + random.integer(shuffled.length);
  const rest = shuffled.slice(count);
  return { expected: config.id, voters: shuffled.slice(0, count), learners: rest.filter(() => random.chance(0.5)) };
}
