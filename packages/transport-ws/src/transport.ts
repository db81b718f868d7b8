import type { Message, NodeId, Transport } from "@synod/core";
import type { Logger } from "./logger.js";
import { PeerLink, type PeerLinkOptions, type PeerLinkStatistics } from "./peer-link.js";
import type { TlsClientOptions } from "./tls.js";

export interface WsTransportOptions {
  readonly self: NodeId;
  readonly clusterId: string;
  /** Every other member and its endpoint (`ws://host:port` or `wss://...`). */
  readonly peers: readonly { readonly id: NodeId; readonly url: string }[];
  readonly secret: string | undefined;
  readonly tls?: TlsClientOptions;
  readonly logger: Logger;
  readonly link?: Partial<Pick<PeerLinkOptions, "maxQueuedMessages" | "maxBufferedBytes" | "maxPayloadBytes" | "pingIntervalMs" | "reconnectMinMs" | "reconnectMaxMs">>;
}

/**
 * Core's `Transport` over WebSocket. Outgoing messages go on the link this
 * replica dialled to each peer (one connection per direction); incoming ones
 * arrive through a `SynodServer`, which hands them to `deliver`.
 */
export class WsTransport implements Transport {
  readonly id: NodeId;
  private readonly links = new Map<NodeId, PeerLink>();
  private handler: ((message: Message) => void) | undefined;
  private closed = false;

  constructor(private readonly options: WsTransportOptions) {
    this.id = options.self;
    this.setPeers(options.peers);
  }

  /**
   * Dials exactly these peers from now on (a configuration change added or
   * removed members): new ones get a link, removed ones lose theirs, and a
   * peer whose address changed is dialled anew.
   */
  setPeers(peers: readonly { readonly id: NodeId; readonly url: string }[]): void {
    if (this.closed) return;
    const wanted = new Map(peers.filter((peer) => peer.id !== this.options.self).map((peer) => [peer.id, peer.url]));
    for (const [id, link] of this.links) {
      if (wanted.get(id) === link.url) continue;
      link.close();
      this.links.delete(id);
    }
    for (const [id, url] of wanted) {
      if (this.links.has(id)) continue;
      const options = this.options;
      this.links.set(
        id,
        new PeerLink({
          self: options.self,
          peer: id,
          url,
          clusterId: options.clusterId,
          secret: options.secret,
          logger: options.logger,
          ...(options.tls === undefined ? {} : { tls: options.tls }),
          ...options.link,
        }),
      );
    }
  }

  send(message: Message): void {
    if (this.closed) return;
    this.links.get(message.to)?.send(message);
  }

  onMessage(handler: (message: Message) => void): void {
    this.handler = handler;
  }

  /** Called by the server with each authenticated, validated peer message. */
  deliver(message: Message): void {
    if (!this.closed) this.handler?.(message);
  }

  /** Per-peer counters: sent, dropped (queue full), connects, failed handshakes; and whether the link is up. */
  statistics(): Record<NodeId, PeerLinkStatistics & { connected: boolean }> {
    const result: Record<NodeId, PeerLinkStatistics & { connected: boolean }> = {};
    for (const [peer, link] of this.links) result[peer] = { ...link.statistics, connected: link.connected };
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const link of this.links.values()) link.close();
  }
}
