export { SynodClient, ClientError, UnknownOutcomeError, type CallOptions, type Stream, type StreamHandlers, type SynodClientOptions } from "./client.js";
export { errorReply, nodeClientHandler } from "./handler.js";
export { ResumingStream, type ResumingStreamOptions } from "./resuming-stream.js";
export { SynodServer, type SynodServerOptions, type ServerStatistics } from "./server.js";
export { WsTransport, type WsTransportOptions } from "./transport.js";
export { PeerLink, type PeerLinkOptions, type PeerLinkStatistics } from "./peer-link.js";
export { jsonLogger, silentLogger, type Logger, type LogLevel } from "./logger.js";
export {
  PROTOCOL_VERSION,
  clientRequestFrame,
  clientEventFrame,
  clientResponseFrame,
  clientServerFrame,
  peerMessageFrame,
  type ClientHandler,
  type ClientReply,
  type ClientRequestBody,
  type StreamSink,
  type WireError,
} from "./protocol.js";
export type { TlsClientOptions, TlsServerOptions } from "./tls.js";
