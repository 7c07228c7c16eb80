/// How to reach and authenticate to the NATS servers.
public struct ConnectionOptions: Sendable, Equatable {
    /// Server URLs (`nats://host:4222`, `tls://...`); the client fails over between them.
    public var servers: [String]
    /// Client name shown by the server (`nats server report connections`).
    public var name: String
    /// User and password authentication.
    public var user: String?
    public var password: String?
    /// Token authentication.
    public var token: String?
    /// A `.creds` file (JWT and NKey seed), as `nats context` uses.
    public var credentialsFile: String?
    /// NKey authentication: the user's public key and the file holding its seed.
    public var nkeyPublicKey: String?
    public var nkeySeedFile: String?
    /// TLS: CA bundle to trust, and a client certificate and key for mutual TLS.
    public var tlsCAFile: String?
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    /// Wait between reconnect attempts; attempts never stop.
    public var reconnectWait: Duration
    /// Send each publish at once instead of batching for up to 1 ms (libnats 3.4 flusher):
    /// for replies, acks and fetches.
    public var sendAsap: Bool
    /// Bytes of publishes buffered while disconnected (libnats default 8 MB).
    public var reconnectBufferBytes: Int
    /// Prefix of reply subjects instead of `_INBOX`, for brokers whose permissions give a
    /// user only its own inboxes (`_INBOX_hook.>` in config/nats-server.conf).
    public var inboxPrefix: String?

    /// Options for the given servers with defaults suited to a long-running daemon.
    public init(servers: [String] = ["nats://127.0.0.1:4222"], name: String = "clusterd") {
        self.servers = servers
        self.name = name
        reconnectWait = .milliseconds(250)
        sendAsap = false
        reconnectBufferBytes = 8 * 1024 * 1024
    }
}

/// Something that happened to a connection, for logs and counters.
public enum ConnectionEvent: Sendable, Equatable {
    case connected
    case disconnected
    case reconnected
    case closed
    /// Messages were dropped because a subscription's pending limit was exceeded.
    case slowConsumer(subject: String, dropped: Int64)
    /// An asynchronous error reported by the library.
    case error(String)
}
