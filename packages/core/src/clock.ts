/**
 * A monotonic clock in milliseconds. Injected: the driver passes a real one,
 * the simulator a simulated one that can drift.
 */
export interface Clock {
  now(): number;
}
