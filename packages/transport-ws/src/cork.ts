import type { Duplex } from "node:stream";
import type { WebSocket } from "ws";

const corked = new WeakSet<Duplex>();

/**
 * Holds a WebSocket's writes until the current burst of work is done (the
 * next `process.nextTick` drain), so that every frame sent in it leaves in
 * one `writev` instead of one system call each. `ws` corks around each frame
 * already; Node counts corks, so this outer one holds them all. Costs no
 * latency: the frames leave before the event loop turns.
 */
export function corkForThisTick(ws: WebSocket): void {
  // `_socket` is the net.Socket (or TLS socket) under the WebSocket: not public API, so absent is tolerated.
  const socket = (ws as unknown as { _socket?: Duplex })._socket;
  if (socket === undefined || socket === null || corked.has(socket) || socket.destroyed) return;
  corked.add(socket);
  socket.cork();
  process.nextTick(() => {
    corked.delete(socket);
    socket.uncork();
  });
}
