/** TLS material for a listener: its certificate, and optionally a CA to require and verify client certificates (mutual TLS). */
export interface TlsServerOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** When set, peers and clients must present a certificate signed by this CA. */
  readonly ca?: string | Buffer;
  readonly requestClientCertificate?: boolean;
}

/** TLS material for dialling: the CA to trust, and this replica's own certificate for mutual TLS. */
export interface TlsClientOptions {
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  readonly rejectUnauthorized?: boolean;
}
