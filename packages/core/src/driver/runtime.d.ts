/**
 * The few runtime globals the driver uses. They exist alike in Node, Deno,
 * Bun and browsers; declaring them here keeps core free of both the Node and
 * the DOM type libraries (so nothing Node-only can slip in).
 */
declare function setTimeout(callback: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;
declare function setInterval(callback: () => void, ms?: number): unknown;
declare function clearInterval(handle: unknown): void;
declare function queueMicrotask(callback: () => void): void;
declare const performance: { now(): number };
declare const crypto: { getRandomValues<T extends Uint32Array>(array: T): T };
declare const setImmediate: ((callback: () => void) => unknown) | undefined;
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
