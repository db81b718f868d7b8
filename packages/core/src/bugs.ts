/**
 * Known protocol bugs that can be switched on one at a time, to prove that the
 * simulator and the checker catch them (a test that cannot fail proves
 * nothing). Never set outside tests.
 */
export const PLANTED_BUGS = [
  /** The acceptor sends its promise or accepted reply before the state behind it is durable. */
  "reply-before-persist",
  /** The acceptor accepts a value at a ballot lower than its promise. */
  "accept-lower-ballot",
  /** A new leader ignores the values it found in Phase 1 and proposes no-ops. */
  "ignore-promised-values",
  /** The acceptor claims `noMoreAccepted` after the first chunk even when it accepted more. */
  "no-more-accepted-early",
  /** Slots at the leader's `firstUnchosen` (not only below it) are marked chosen. */
  "chosen-off-by-one",
  /** Slots below the leader's `firstUnchosen` are marked chosen whatever ballot they were accepted at. */
  "chosen-any-ballot",
  /** The session table is not consulted, so a retried command is applied again. */
  "ignore-session-table",
  /** A promise reports only unchosen slots, so a new leader cannot see values already chosen. */
  "promise-omits-chosen",
  /** A restarted replica forgets its promised ballot. */
  "forget-promise-on-restart",
  /** The leader serves reads from its local state at once, without confirming with a quorum that it still leads. */
  "read-without-quorum",
  /** A configuration takes effect at the slot after the one that chose it, while the leader keeps many slots in flight: the leader can count votes with the wrong quorum. */
  "config-without-alpha",
  /** The leader counts its lease as long as the acceptors' promise, as if clocks could not drift. */
  "lease-ignores-drift",
  /** An acceptor answers a leader's heartbeat without promising to refuse other prepares for the lease: a new leader can be chosen while the old one still serves lease reads. */
  "lease-not-honoured",
  /** A replica that lost its disk votes at once, as if new, instead of rebuilding first: it may break a promise it made before. */
  "rebuild-votes-at-once",
] as const;

export type PlantedBug = (typeof PLANTED_BUGS)[number];

export type PlantedBugs = ReadonlySet<PlantedBug>;

export const NO_BUGS: PlantedBugs = new Set();
