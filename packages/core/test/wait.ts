/**
 * Polls `probe` every 2 ms until it returns something other than undefined
 * or false, and resolves with that; rejects naming `what` after `timeoutMs`.
 * The core tests' one way to wait on real timers and networks.
 */
export async function waitFor<T>(probe: () => T | undefined | false, what = "a condition", timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(() => resolve(), 2));
  }
}
