/**
 * UTF-8 sizes and codecs without the Node or DOM type libraries: this package
 * runs wherever core does (Node, Deno, Bun, browsers), and `TextEncoder` /
 * `TextDecoder` exist in all of them, so they are reached through `globalThis`
 * with the few members used here typed locally.
 */
interface TextCodecs {
  readonly TextEncoder: new () => { encode(text: string): Uint8Array };
  readonly TextDecoder: new (label: string, options: { fatal: boolean }) => { decode(bytes: Uint8Array): string };
}

const codecs = globalThis as unknown as TextCodecs;
const encoder = new codecs.TextEncoder();
/** Fatal: malformed UTF-8 in a snapshot is an error, not a silent U+FFFD. */
const decoder = new codecs.TextDecoder("utf-8", { fatal: true });

export function encodeUtf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Throws a `TypeError` on malformed UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/**
 * The UTF-8 length of `text`, without encoding it: what the quota and the
 * size limits count (bytes, as etcd does, not UTF-16 units). A lone surrogate
 * counts 3 bytes, as `TextEncoder` would encode it (U+FFFD).
 */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let index = 0; index < text.length; index += 1) {
    const unit = text.charCodeAt(index);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit < 0xdc00 && index + 1 < text.length && isLowSurrogate(text.charCodeAt(index + 1))) {
      bytes += 4;
      index += 1;
    } else bytes += 3;
  }
  return bytes;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit < 0xe000;
}
