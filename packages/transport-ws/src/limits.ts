/**
 * Limits applied to untrusted input before anything else looks at it.
 */

/** WebSocket close reasons may be at most 123 bytes of UTF-8; `ws` throws on longer ones. */
export function closeReason(text: string): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= 123) return text;
  // Cut at 120 bytes, then drop a partial trailing character.
  return bytes.subarray(0, 120).toString("utf8").replace(/\uFFFD$/, "");
}

/** Deepest nesting of arrays and objects accepted in a frame: far above any real message, far below the stack. */
export const MAX_NESTING_DEPTH = 64;

/** True when `value` nests arrays and objects deeper than `limit` (checked without recursion). */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: current, depth } = stack.pop() as { value: unknown; depth: number };
    if (current === null || typeof current !== "object") continue;
    if (depth >= limit) return true;
    const children = Array.isArray(current) ? current : Object.values(current as Record<string, unknown>);
    for (const child of children) if (child !== null && typeof child === "object") stack.push({ value: child, depth: depth + 1 });
  }
  return false;
}
