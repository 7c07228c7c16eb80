/// A JetStream stream as clusterd wants it to exist.
public struct StreamConfig: Sendable, Equatable {
    /// Stream name (capitals by convention, e.g. `CC_EVENTS`).
    public var name: String
    /// Shown by `nats stream info`.
    public var description: String
    /// Subjects captured by the stream.
    public var subjects: [String]
    /// File storage survives a server restart; memory storage does not.
    public var fileStorage: Bool
    /// Window in which a repeated `Nats-Msg-Id` is dropped as a duplicate.
    public var duplicateWindow: Duration
    /// Oldest message age kept; zero keeps everything.
    public var maxAge: Duration
    /// Copies on a NATS cluster (1 on a single server).
    public var replicas: Int

    /// Creates a stream configuration (file storage, 2-minute duplicate window, one replica).
    public init(name: String, description: String, subjects: [String], fileStorage: Bool = true,
                duplicateWindow: Duration = .seconds(120), maxAge: Duration = .zero, replicas: Int = 1) {
        self.replicas = replicas
        self.name = name
        self.description = description
        self.subjects = subjects
        self.fileStorage = fileStorage
        self.duplicateWindow = duplicateWindow
        self.maxAge = maxAge
    }
}

/// A durable pull consumer with explicit acks.
public struct ConsumerConfig: Sendable, Equatable {
    /// Durable name; the consumer survives restarts of clusterd and is never deleted by it.
    public var durable: String
    /// Shown by `nats consumer info`.
    public var description: String
    /// Unacknowledged messages are redelivered after this long.
    public var ackWait: Duration
    /// Deliveries before the server gives up on a message (-1: no limit).
    public var maxDeliver: Int
    /// Messages delivered but not yet acknowledged, at most.
    public var maxAckPending: Int
    /// Only messages on this subject (empty: all of the stream).
    public var filterSubject: String

    /// Creates a consumer configuration.
    public init(durable: String, description: String, ackWait: Duration = .seconds(30), maxDeliver: Int = -1,
                maxAckPending: Int = 10_000, filterSubject: String = "") {
        self.durable = durable
        self.description = description
        self.ackWait = ackWait
        self.maxDeliver = maxDeliver
        self.maxAckPending = maxAckPending
        self.filterSubject = filterSubject
    }
}

/// The server's answer to a JetStream publish.
public struct PublishAck: Sendable, Equatable {
    /// The stream that stored the message.
    public var stream: String
    /// Its sequence number in that stream.
    public var sequence: UInt64
    /// True when the message id was seen within the duplicate window: nothing was stored.
    public var duplicate: Bool
}

/// Delivery facts of a JetStream message.
public struct DeliveryInfo: Sendable, Equatable {
    /// Sequence in the stream.
    public var streamSequence: UInt64
    /// How often it was delivered, this time included.
    public var deliveries: UInt64
    /// Messages still pending for the consumer after this one.
    public var pending: UInt64
    /// When the message was stored, in nanoseconds since the epoch.
    public var timestamp: Int64
}
