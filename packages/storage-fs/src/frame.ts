import { crc32c } from "@node-rs/crc32";

/**
 * On-disk framing of every log record:
 *
 *   offset 0  u8   magic 0xA7 (lets recovery resynchronise after a bad frame)
 *   offset 1  u8   kind
 *   offset 2  u32  payload length, little endian
 *   offset 6  u32  CRC32C of kind ‖ length ‖ payload
 *   offset 10      payload
 *
 * The checksum covers the length, so a flipped length bit is detected like a
 * flipped payload bit.
 */
export const FRAME_MAGIC = 0xa7;
export const FRAME_HEADER_BYTES = 10;
/** No single frame is larger; a length above it is corruption, not a huge record. */
export const MAX_FRAME_PAYLOAD_BYTES = 64 * 1024 * 1024;

export const FrameKind = {
  /** A slot record (accepted value, or chosen value learned whole). */
  record: 1,
  /** Chosen marks for slots already written. */
  chosenMarks: 2,
  /** Ends one group commit: everything since the previous commit frame is durable as a unit. */
  commit: 3,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export function encodeFrame(kind: FrameKind, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame[0] = FRAME_MAGIC;
  frame[1] = kind;
  frame.writeUInt32LE(payload.length, 2);
  frame.set(payload, FRAME_HEADER_BYTES);
  frame.writeUInt32LE(checksum(frame, payload.length), 6);
  return frame;
}

function checksum(frame: Buffer, payloadLength: number): number {
  // kind ‖ length, then the payload: the CRC field itself is skipped.
  const head = crc32c(frame.subarray(1, 6));
  return crc32c(frame.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + payloadLength), head);
}

export type FrameRead =
  | { readonly ok: true; readonly kind: FrameKind; readonly payload: Buffer; readonly end: number }
  /** `checksummed`: the checksum held, so the bytes are as written: whatever is wrong is not a torn write. */
  | { readonly ok: false; readonly reason: string; readonly short: boolean; readonly checksummed?: boolean };

/** Reads the frame at `offset`; a frame cut short by the end of the buffer is `short`. */
export function readFrame(buffer: Buffer, offset: number): FrameRead {
  if (buffer.length - offset < FRAME_HEADER_BYTES) return { ok: false, reason: "frame header cut short", short: true };
  if (buffer[offset] !== FRAME_MAGIC) return { ok: false, reason: `bad magic byte 0x${(buffer[offset] ?? 0).toString(16)}`, short: false };
  const kind = buffer[offset + 1] as number;
  const length = buffer.readUInt32LE(offset + 2);
  if (length > MAX_FRAME_PAYLOAD_BYTES) return { ok: false, reason: `frame length ${length} exceeds the maximum`, short: false };
  const end = offset + FRAME_HEADER_BYTES + length;
  if (end > buffer.length) return { ok: false, reason: `frame of ${length} bytes cut short`, short: true };
  const frame = buffer.subarray(offset, end);
  if (checksum(frame, length) !== buffer.readUInt32LE(offset + 6)) return { ok: false, reason: "checksum mismatch", short: false };
  if (kind !== FrameKind.record && kind !== FrameKind.chosenMarks && kind !== FrameKind.commit) {
    return { ok: false, reason: `unknown frame kind ${kind}`, short: false, checksummed: true };
  }
  return { ok: true, kind: kind as FrameKind, payload: frame.subarray(FRAME_HEADER_BYTES), end };
}

/** True when a whole, valid frame starts anywhere in `[from, buffer.length)`: the damage before it is not a torn tail. */
export function validFrameAfter(buffer: Buffer, from: number): number | undefined {
  for (let offset = buffer.indexOf(FRAME_MAGIC, from); offset !== -1; offset = buffer.indexOf(FRAME_MAGIC, offset + 1)) {
    if (readFrame(buffer, offset).ok) return offset;
  }
  return undefined;
}
