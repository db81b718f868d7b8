import type { NodeId } from "../ballot.js";
import { EpochChangedError, NotLeaderError, SynodError } from "../errors.js";

/** Builds a typed error from a reply that crossed the state-machine boundary. */
export function errorFromReply(reply: { code: string; message: string; leaderHint?: NodeId }): Error {
  switch (reply.code) {
    case "NOT_LEADER":
      return new NotLeaderError(reply.leaderHint);
    case "EPOCH_CHANGED":
      return new EpochChangedError(reply.leaderHint);
    default: {
      const error = new ReplyError(reply.code, reply.message);
      return error;
    }
  }
}

/** A typed error reported by the replicated state (session expired, stale sequence...). */
export class ReplyError extends SynodError {
  readonly retryable = false;
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
