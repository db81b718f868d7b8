import type { NodeId } from "../ballot.js";
import { EpochChangedError } from "../errors.js";
import type { Outcome } from "../host.js";
import type { Command, CommandBody } from "../values.js";
import { errorFromReply } from "./reply-error.js";

/**
 * The node's own client session, behind `propose` and `proposeMulti`: opened
 * on first use, opened anew when it expired while the node was idle, and
 * numbering its commands. A command whose leadership changed while in flight
 * is retried with the same sequence number, so it applies at most once.
 */
export class OwnSession {
  private session: string;
  /** The open-session command in flight or answered; undefined until first use, and again after it failed. */
  private opened: Promise<void> | undefined;
  private nextSeq = 1;

  constructor(
    private readonly nodeId: NodeId,
    /** Submits a command and resolves with its outcome once applied (`SynodNode.submit`). */
    private readonly submit: (command: Command) => Promise<Outcome>,
    /** How long to wait before retrying after a leadership change (a replica tick). */
    private readonly retryDelayMs: number,
  ) {
    this.session = newSessionId(nodeId);
  }

  /** Proposes `body` on this session and resolves with its result once applied. */
  async propose(body: CommandBody): Promise<unknown> {
    await this.open();
    let command: Command = { session: this.session, seq: this.nextSeq++, body };
    for (let attempt = 0; ; attempt += 1) {
      try {
        const outcome = await this.submit(command);
        if (outcome.ok) return outcome.result;
        // The session expired while this node was idle. On a first attempt
        // the command cannot have applied (its session was gone), so it is
        // safe to open a new session and send it there; after an attempt of
        // unknown outcome it is not, and the caller must decide.
        if (outcome.error.code === "SESSION_EXPIRED" && attempt === 0 && command.session === this.session) {
          this.renew();
          await this.open();
          command = { session: this.session, seq: this.nextSeq++, body };
          continue;
        }
        throw errorFromReply(outcome.error);
      } catch (error) {
        // Leadership changed while in flight: retrying the same (session, seq)
        // is exactly-once, so do it while this replica leads again.
        if (!(error instanceof EpochChangedError) || attempt >= 3) throw error;
        await new Promise<void>((resolve) => setTimeout(() => resolve(), this.retryDelayMs));
      }
    }
  }

  private renew(): void {
    this.session = newSessionId(this.nodeId);
    this.opened = undefined;
    this.nextSeq = 1;
  }

  private open(): Promise<void> {
    if (this.opened === undefined) {
      this.opened = this.submit({ session: this.session, seq: 0, body: { type: "open-session" } }).then(
        () => undefined,
        (error: unknown) => {
          this.opened = undefined;
          throw error;
        },
      );
    }
    return this.opened;
  }
}

/**
 * A session id unique to this process start: 128 random bits from the
 * platform's cryptographic generator, never the seeded PRNG (a restart with
 * the same seed must not reuse a session whose sequence numbers it forgot).
 */
export function newSessionId(nodeId: NodeId): string {
  const words = crypto.getRandomValues(new Uint32Array(4));
  let hex = "";
  for (const word of words) hex += word.toString(16).padStart(8, "0");
  return `${nodeId}/${hex}`;
}
