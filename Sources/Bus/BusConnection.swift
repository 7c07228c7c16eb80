import CNats
#if canImport(Glibc)
import Glibc
#endif

/// A connection to NATS: publish, subscribe, request, and the JetStream context.
///
/// It connects in the background when the servers are not reachable yet, and reconnects
/// forever. libnats locks internally, so one connection may be used from any thread.
public final class BusConnection: @unchecked Sendable {
    let nc: OpaquePointer
    private let sink: ConnectionEventSink
    /// Disconnect, reconnect and slow-consumer counts.
    public let counters: ConnectionCounters

    /// Connects with `options`; `onEvent` is called (on a libnats thread) for every
    /// connection event. Returns at once when no server is reachable yet: publishes are
    /// buffered and subscriptions start when the connection comes up.
    public init(_ options: ConnectionOptions, onEvent: @escaping @Sendable (ConnectionEvent) -> Void = { _ in }) throws(BusError) {
        counters = ConnectionCounters()
        sink = ConnectionEventSink(handler: onEvent, counters: counters)
        // libnats calls the connection callbacks on its own threads, the closed callback even
        // after natsConnection_Destroy returned: the C side holds one reference to the sink,
        // released by that closed callback.
        let sinkPointer = Unmanaged.passRetained(sink).toOpaque()
        var connected = false
        defer { if !connected { Unmanaged<ConnectionEventSink>.fromOpaque(sinkPointer).release() } }
        var opts: OpaquePointer?
        try check(natsOptions_Create(&opts), "create connection options")
        guard let opts else { throw BusError.closed }
        defer { natsOptions_Destroy(opts) }  // natsConnection_Connect clones them
        let strings = CStrings()
        try check(natsOptions_SetServers(opts, strings.array(options.servers), Int32(options.servers.count)), "set servers \(options.servers)")
        try check(natsOptions_SetName(opts, options.name), "set client name")
        if let user = options.user {
            try check(natsOptions_SetUserInfo(opts, user, options.password ?? ""), "set user and password")
        }
        if let token = options.token { try check(natsOptions_SetToken(opts, token), "set token") }
        if let creds = options.credentialsFile {
            try check(natsOptions_SetUserCredentialsFromFiles(opts, creds, nil), "load credentials file \(creds)")
        }
        if let seed = options.nkeySeedFile {
            try check(natsOptions_SetNKeyFromSeed(opts, options.nkeyPublicKey ?? "", seed), "load NKey seed \(seed)")
        }
        if options.tlsCAFile != nil || options.tlsCertificateFile != nil {
            try check(natsOptions_SetSecure(opts, true), "enable TLS")
            if let ca = options.tlsCAFile { try check(natsOptions_LoadCATrustedCertificates(opts, ca), "load TLS CA \(ca)") }
            if let cert = options.tlsCertificateFile, let key = options.tlsKeyFile {
                try check(natsOptions_LoadCertificatesChain(opts, cert, key), "load TLS certificate \(cert)")
            }
        }
        if let prefix = options.inboxPrefix {
            try check(natsOptions_SetCustomInboxPrefix(opts, prefix), "set inbox prefix \(prefix)")
        }
        try check(natsOptions_SetMaxReconnect(opts, -1), "set reconnect forever")
        try check(natsOptions_SetReconnectWait(opts, options.reconnectWait.milliseconds), "set reconnect wait")
        try check(natsOptions_SetReconnectBufSize(opts, Int32(options.reconnectBufferBytes)), "set reconnect buffer")
        try check(natsOptions_SetSendAsap(opts, options.sendAsap), "set send-asap")
        try check(natsOptions_SetRetryOnFailedConnect(opts, true, connectedTrampoline, sinkPointer), "set retry on failed connect")
        try check(natsOptions_SetDisconnectedCB(opts, disconnectedTrampoline, sinkPointer), "set disconnected callback")
        try check(natsOptions_SetReconnectedCB(opts, reconnectedTrampoline, sinkPointer), "set reconnected callback")
        try check(natsOptions_SetClosedCB(opts, closedTrampoline, sinkPointer), "set closed callback")
        try check(natsOptions_SetErrorHandler(opts, errorTrampoline, sinkPointer), "set error handler")
        var conn: OpaquePointer?
        let status = natsConnection_Connect(&conn, opts)
        // With retry-on-failed-connect, NATS_NOT_YET_CONNECTED means "connecting in the background".
        if status != NATS_OK && status != NATS_NOT_YET_CONNECTED {
            throw BusError.from(status, "connect to \(options.servers.joined(separator: ","))")
        }
        guard let conn else { throw BusError.closed }
        nc = conn
        connected = true
        if status == NATS_OK {
            sink.everConnected.store(true, ordering: .releasing)
            onEvent(.connected)
        }
    }

    /// Waits (blocking, up to `timeout`) until the connection has been up once. Until then
    /// libnats does not know whether the server takes headers and refuses every message that
    /// has some — a message id included — with a misleading "Not Supported By Server"; after
    /// it, messages are buffered across reconnects as usual.
    public func awaitFirstConnection(timeout: Duration, for operation: String) throws(BusError) {
        let deadline = ContinuousClock.now + timeout
        while !sink.everConnected.load(ordering: .acquiring) {
            if ContinuousClock.now >= deadline { throw BusError.timeout(operation: "\(operation) (not connected to NATS yet)") }
            usleep(5_000)
        }
    }

    deinit {
        natsConnection_Destroy(nc)
    }

    /// The last error libnats recorded on this connection (a failed connect's reason
    /// included), or nil.
    public var lastError: String? {
        var text: UnsafePointer<CChar>?
        let status = natsConnection_GetLastError(nc, &text)
        guard status != NATS_OK else { return nil }
        if let text, text.pointee != 0 { return String(cString: text) }
        return String(cString: natsStatus_GetText(status))
    }

    /// The largest message (headers and payload) the connected server accepts; 0 before
    /// the first connection.
    public var maxPayload: Int { Int(natsConnection_GetMaxPayload(nc)) }

    /// Whether the connection is up right now.
    public var isConnected: Bool { natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED }

    /// Waits until connected, polling; throws `.timeout` after `timeout`.
    public func waitUntilConnected(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while !isConnected {
            if ContinuousClock.now >= deadline { throw BusError.timeout(operation: "wait for connection") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Publishes `data` on `subject` (buffered; see ``ConnectionOptions/sendAsap``).
    public func publish(_ subject: String, _ data: [UInt8], reply: String? = nil) throws(BusError) {
        let status = data.withUnsafeBytes { bytes in
            if let reply { return natsConnection_PublishRequest(nc, subject, reply, bytes.baseAddress, Int32(bytes.count)) }
            return natsConnection_Publish(nc, subject, bytes.baseAddress, Int32(bytes.count))
        }
        try check(status, "publish on \(subject)")
    }

    /// Publishes a message with headers.
    public func publish(_ message: BusMessage) throws(BusError) {
        if !message.headers.isEmpty { try awaitFirstConnection(timeout: .seconds(5), for: "publish on \(message.subject)") }
        let msg = try message.makeNatsMsg()
        defer { natsMsg_Destroy(msg) }
        try check(natsConnection_PublishMsg(nc, msg), "publish on \(message.subject)")
    }

    /// Sends buffered publishes and waits for the server to confirm them.
    public func flush(timeout: Duration = .seconds(5)) throws(BusError) {
        try check(natsConnection_FlushTimeout(nc, timeout.milliseconds), "flush")
    }

    /// Sends a request and waits for its reply. Blocks the calling thread: call it from a
    /// dedicated thread or a detached task, never in a tight loop on the cooperative pool.
    public func request(_ message: BusMessage, timeout: Duration = .seconds(5)) throws(BusError) -> BusMessage {
        if !message.headers.isEmpty { try awaitFirstConnection(timeout: timeout, for: "request on \(message.subject)") }
        let msg = try message.makeNatsMsg()
        defer { natsMsg_Destroy(msg) }
        var reply: OpaquePointer?
        try check(natsConnection_RequestMsg(&reply, nc, msg, timeout.milliseconds), "request on \(message.subject)", subject: message.subject)
        guard let reply else { throw BusError.timeout(operation: "request on \(message.subject)") }
        defer { natsMsg_Destroy(reply) }
        return BusMessage(copying: reply)
    }

    /// Subscribes to `subject` (wildcards allowed), optionally in a queue group so that
    /// several instances share the messages. `handler` runs on the subscription's libnats
    /// thread, one message at a time in arrival order; keep it short.
    public func subscribe(
        _ subject: String, queue: String? = nil, handler: @escaping @Sendable (BusMessage) -> Void
    ) throws(BusError) -> BusSubscription {
        let box = MessageHandlerBox(handler)
        let opaque = Unmanaged.passRetained(box).toOpaque()
        var sub: OpaquePointer?
        let status: natsStatus
        if let queue {
            status = natsConnection_QueueSubscribe(&sub, nc, subject, queue, messageTrampoline, opaque)
        } else {
            status = natsConnection_Subscribe(&sub, nc, subject, messageTrampoline, opaque)
        }
        guard status == NATS_OK, let sub else {
            Unmanaged<MessageHandlerBox>.fromOpaque(opaque).release()
            throw BusError.from(status, "subscribe to \(subject)")
        }
        natsSubscription_SetOnCompleteCB(sub, subscriptionCompleteTrampoline, opaque)
        return BusSubscription(sub: sub, connection: self)
    }

    /// A unique inbox subject for replies.
    public func newInbox() -> String {
        var inbox: UnsafeMutablePointer<natsInbox>?
        natsInbox_Create(&inbox)
        defer { natsInbox_Destroy(inbox) }
        return String(cString: UnsafeRawPointer(inbox!).assumingMemoryBound(to: CChar.self))
    }

    /// Drains nothing and closes at once; pending buffered publishes are flushed first.
    public func close() {
        natsConnection_Close(nc)
    }
}

/// An active core subscription; unsubscribes when asked or when released.
public final class BusSubscription: @unchecked Sendable {
    let sub: OpaquePointer
    let connection: BusConnection

    init(sub: OpaquePointer, connection: BusConnection) {
        self.sub = sub
        self.connection = connection
    }

    /// Removes the per-subscription pending limits (65,536 messages / 64 MB by default),
    /// for subscriptions whose handler may stall briefly under bursts.
    public func removePendingLimits() throws(BusError) {
        try check(natsSubscription_SetPendingLimits(sub, -1, -1), "set pending limits")
    }

    /// Messages dropped because the pending limits were exceeded.
    public var dropped: Int64 {
        var n: Int64 = 0
        natsSubscription_GetDropped(sub, &n)
        return n
    }

    /// Stops delivery.
    public func unsubscribe() {
        natsSubscription_Unsubscribe(sub)
    }

    deinit {
        natsSubscription_Unsubscribe(sub)
        natsSubscription_Destroy(sub)
    }
}
