/**
 * Byte helpers core needs without Node built-ins: CRC32C (Castagnoli, the
 * checksum storage-fs uses on disk) and base64 for bytes carried in JSON
 * messages. Plain TypeScript, so they run in every runtime.
 */

/** `parts` end to end (`parts[0]` itself when it is the only one). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  let size = 0;
  for (const part of parts) size += part.length;
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/** Slicing-by-8 tables: `CRC32C_TABLES[k][b]` is the CRC of byte `b` followed by `k` zero bytes. */
const CRC32C_TABLES = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const first = tables[0] as Uint32Array;
  for (let index = 0; index < 256; index += 1) {
    let crc = index;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    first[index] = crc >>> 0;
  }
  for (let index = 0; index < 256; index += 1) {
    for (let k = 1; k < 8; k += 1) {
      const previous = (tables[k - 1] as Uint32Array)[index] as number;
      (tables[k] as Uint32Array)[index] = (previous >>> 8) ^ (first[previous & 0xff] as number);
    }
  }
  return tables;
})();
const [T0, T1, T2, T3, T4, T5, T6, T7] = CRC32C_TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];

/** CRC32C of `bytes`, continuing from `crc` (0 to start). Eight bytes a step (slicing-by-8). */
/**
 * A 64-bit FNV-1a hash of a string's UTF-16 code units, as 16 hex digits:
 * short, stable names for long digests. Not cryptographic.
 */
export function hashText(text: string): string {
  // Two 32-bit lanes (FNV-1a with different offsets), so no BigInt is needed on the hot path.
  let high = 0xcbf29ce4;
  let low = 0x84222325;
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    high = Math.imul(high ^ code, 0x01000193) >>> 0;
    low = Math.imul(low ^ ((code + index) & 0xffff), 0x01000193) >>> 0;
  }
  return high.toString(16).padStart(8, "0") + low.toString(16).padStart(8, "0");
}

export function crc32c(bytes: Uint8Array, crc = 0): number {
  let value = ~crc >>> 0;
  let index = 0;
  const end8 = bytes.length - (bytes.length % 8);
  for (; index < end8; index += 8) {
    const low = value ^ ((bytes[index] as number) | ((bytes[index + 1] as number) << 8) | ((bytes[index + 2] as number) << 16) | ((bytes[index + 3] as number) << 24));
    value =
      (T7[low & 0xff] as number) ^
      (T6[(low >>> 8) & 0xff] as number) ^
      (T5[(low >>> 16) & 0xff] as number) ^
      (T4[low >>> 24] as number) ^
      (T3[bytes[index + 4] as number] as number) ^
      (T2[bytes[index + 5] as number] as number) ^
      (T1[bytes[index + 6] as number] as number) ^
      (T0[bytes[index + 7] as number] as number);
  }
  for (; index < bytes.length; index += 1) value = (T0[(value ^ (bytes[index] as number)) & 0xff] as number) ^ (value >>> 8);
  return ~value >>> 0;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const ENCODE = Uint8Array.from(ALPHABET, (char) => char.charCodeAt(0));
const DECODE = (() => {
  const table = new Int16Array(256).fill(-1);
  for (let index = 0; index < ALPHABET.length; index += 1) table[ALPHABET.charCodeAt(index)] = index;
  return table;
})();
const ASCII_DECODER = new TextDecoder();
const ASCII_ENCODER = new TextEncoder();

/**
 * The host's native base64, where there is one (Node, Bun): several times
 * faster than the portable code below, which every other runtime uses.
 */
interface NativeBuffer {
  from(bytes: ArrayBufferLike, offset: number, length: number): { toString(encoding: "base64"): string };
  from(text: string, encoding: "base64"): Uint8Array;
}
const NATIVE = (globalThis as { Buffer?: NativeBuffer }).Buffer;

/** Base64 of `bytes`, built as ASCII bytes and decoded once (no string concatenation per character). */
export function toBase64(bytes: Uint8Array): string {
  if (NATIVE !== undefined) return NATIVE.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  return portableToBase64(bytes);
}

export function portableToBase64(bytes: Uint8Array): string {
  const out = new Uint8Array(Math.ceil(bytes.length / 3) * 4);
  let at = 0;
  let index = 0;
  for (; index + 2 < bytes.length; index += 3) {
    const n = ((bytes[index] as number) << 16) | ((bytes[index + 1] as number) << 8) | (bytes[index + 2] as number);
    out[at] = ENCODE[n >>> 18] as number;
    out[at + 1] = ENCODE[(n >>> 12) & 63] as number;
    out[at + 2] = ENCODE[(n >>> 6) & 63] as number;
    out[at + 3] = ENCODE[n & 63] as number;
    at += 4;
  }
  const rest = bytes.length - index;
  if (rest > 0) {
    const n = ((bytes[index] as number) << 16) | (rest === 2 ? (bytes[index + 1] as number) << 8 : 0);
    out[at] = ENCODE[n >>> 18] as number;
    out[at + 1] = ENCODE[(n >>> 12) & 63] as number;
    out[at + 2] = rest === 2 ? (ENCODE[(n >>> 6) & 63] as number) : 61;
    out[at + 3] = 61;
  }
  return ASCII_DECODER.decode(out);
}

/** Decodes base64; throws `RangeError` on anything that is not. */
export function fromBase64(text: string): Uint8Array {
  if (NATIVE !== undefined) {
    // The native decoder skips what is not base64: only a canonical round trip proves the text was.
    const bytes = NATIVE.from(text, "base64");
    if (toBase64(bytes) !== text) throw new RangeError("not canonical base64");
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  return portableFromBase64(text);
}

export function portableFromBase64(text: string): Uint8Array {
  const input = ASCII_ENCODER.encode(text);
  if (input.length % 4 !== 0) throw new RangeError("base64 length is not a multiple of 4");
  const padding = input.length === 0 ? 0 : input[input.length - 1] === 61 ? (input[input.length - 2] === 61 ? 2 : 1) : 0;
  const bytes = new Uint8Array((input.length / 4) * 3 - padding);
  let out = 0;
  const last = input.length - 4;
  for (let index = 0; index < input.length; index += 4) {
    const a = DECODE[input[index] as number] as number;
    const b = DECODE[input[index + 1] as number] as number;
    const tail = index === last;
    const c = tail && padding >= 2 ? 0 : (DECODE[input[index + 2] as number] as number);
    const d = tail && padding >= 1 ? 0 : (DECODE[input[index + 3] as number] as number);
    if ((a | b | c | d) < 0) throw new RangeError(`not base64 at ${index}`);
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    bytes[out++] = n >>> 16;
    if (out < bytes.length) bytes[out++] = (n >>> 8) & 0xff;
    if (out < bytes.length) bytes[out++] = n & 0xff;
  }
  return bytes;
}
