/// A message handed to a processor, whatever the intake mode.
public struct IncomingMessage: Sendable {
    /// Subject it arrived on.
    public var subject: String
    /// The body (line protocol).
    public var data: [UInt8]
    /// The publisher's `Nats-Msg-Id`, if any: results are published under it.
    public var messageID: String?
    /// Unique delivery identity: `<stream>:<sequence>` with JetStream; the message id or a
    /// random id in core mode.
    public var origin: String
    /// Reply subject (core mode: the result is sent there).
    public var reply: String?
    /// Epoch seconds when received.
    public var receivedAt: Int64
    /// The dead letter this message replays (header `Clusterd-Replay-Of`): it leaves the
    /// dead-letter table when this message is applied (a new rejection records a new letter).
    public var replayOf: Int64?
    /// How often the broker has handed this message out, this time included: above 1, an
    /// earlier attempt failed or ended with the process, and the intake applies it alone.
    public var deliveries: UInt64 = 1
    /// Its lines, decoded ahead off the writer (``StageProcessor/predecode(_:)``); nil: they are
    /// decoded when the batch is applied.
    public var decoded: DecodedLines?

    /// Whether anyone receives this message's result (it has a message id or a reply
    /// subject): without one, no result is built (see ``StageProcessor``).
    public var hasResultReceiver: Bool { messageID != nil || reply != nil }

    /// The header naming the dead letter a message replays.
    public static let replayHeader = "Clusterd-Replay-Of"

    /// Creates an incoming message.
    public init(subject: String, data: [UInt8], messageID: String?, origin: String, reply: String? = nil, receivedAt: Int64,
                replayOf: Int64? = nil) {
        self.replayOf = replayOf
        self.subject = subject
        self.data = data
        self.messageID = messageID
        self.origin = origin
        self.reply = reply
        self.receivedAt = receivedAt
    }
}
