import Bus
import Model
import Store

/// A rejected line: what came in, where, and why. Published on `clusterd.dlq.<stage>` and
/// kept in table `dead_letter` until it is replayed or pruned.
public struct DeadLetter: Sendable, Equatable {
    /// The stage that refused it (`jobs`).
    public var stage: String
    /// The subject it arrived on.
    public var subject: String
    /// The publisher's `Nats-Msg-Id`, if any.
    public var messageID: String?
    /// Where it came from (`CC_EVENTS:42` = stream and sequence).
    public var origin: String
    /// 1-based line and column in the message.
    public var line: Int
    public var column: Int
    /// Stable reason code (`unknown_cluster`, `syntax`, ...).
    public var code: String
    /// The reason, for people.
    public var reason: String
    /// The offending line as received.
    public var raw: String
    /// Epoch seconds.
    public var receivedAt: Int64

    /// A letter with every field given.
    package init(stage: String, subject: String, messageID: String?, origin: String, line: Int, column: Int, code: String,
                 reason: String, raw: String, receivedAt: Int64) {
        self.stage = stage
        self.subject = subject
        self.messageID = messageID
        self.origin = origin
        self.line = line
        self.column = column
        self.code = code
        self.reason = reason
        self.raw = raw
        self.receivedAt = receivedAt
    }

    /// The most of `raw` a published dead letter carries (bytes); the table keeps all of it
    /// (for replay). With `reason` capped too, a letter stays far below any broker's
    /// max_payload even when every byte needs escaping.
    public static let maxRaw = 16 * 1024
    /// The most of `reason` a published dead letter carries (bytes).
    public static let maxReason = 4 * 1024

    /// `text` cut to at most `limit` bytes on a character boundary, marked when cut.
    static func bounded(_ text: String, _ limit: Int) -> (text: String, cut: Bool) {
        let utf8 = text.utf8
        guard utf8.count > limit else { return (text, false) }
        var end = utf8.index(utf8.startIndex, offsetBy: limit)
        while end > utf8.startIndex && end.samePosition(in: text.unicodeScalars) == nil { end = utf8.index(before: end) }
        return (String(text[..<end]) + "…", true)
    }

    /// The JSON published on the dead-letter subject. A long `raw` is cut to ``maxRaw``
    /// bytes; `rawBytes` then gives its full size and `rawTruncated` is true.
    public var json: JSONValue {
        var b = JSONObjectBuilder()
        b.add("stage", stage)
        b.add("subject", subject)
        b.addIfPresent("messageId", messageID.map(JSONValue.string))
        b.add("origin", origin)
        b.add("line", line)
        b.add("column", column)
        b.add("code", code)
        b.add("reason", Self.bounded(reason, Self.maxReason).text)
        let (shownRaw, cut) = Self.bounded(raw, Self.maxRaw)
        b.add("raw", shownRaw)
        if cut {
            b.add("rawBytes", raw.utf8.count)
            b.add("rawTruncated", true)
        }
        b.add("receivedAt", receivedAt)
        return b.value
    }

    /// `line L, column C: reason`.
    public var summary: String { "line \(line), column \(column): \(reason)" }
}

extension DeadLetter {
    /// A letter about a core-NATS message (metrics, fleet): no stream sequence, so its origin
    /// is `core:<subject>`; the publisher's `Nats-Msg-Id` is kept.
    package init(stage: String, message: BusMessage, line: Int, column: Int, code: String, reason: String, raw: String, receivedAt: Int64) {
        self.init(stage: stage, subject: message.subject, messageID: message.header("Nats-Msg-Id"), origin: "core:\(message.subject)",
                  line: line, column: column, code: code, reason: reason, raw: raw, receivedAt: receivedAt)
    }

    /// The content hash of a core-NATS message (subject, `Nats-Msg-Id`, body), computed once
    /// per message for the ids of its letters.
    package static func contentHash(of message: BusMessage) -> String {
        ContentHash.hex(Array("\(message.subject)\u{0}\(message.header("Nats-Msg-Id") ?? "")\u{0}".utf8) + message.data)
    }

    /// This letter (about a core-NATS message whose ``contentHash(of:)`` is `hash`) as an
    /// outbox message on `<prefix>.<stage>`. The id follows the content — the message, the
    /// second it arrived, line, column and code — so a re-publish is dropped by the
    /// dead-letter stream while two different letters never share an id.
    package func outboxMessage(prefix: String, messageHash hash: String) -> OutboxMessage {
        OutboxMessage(subject: "\(prefix).\(stage)", messageID: "dlq-\(stage)-\(receivedAt)-\(hash)-\(line)-\(column)-\(code)",
                      payload: json.jsonBytes)
    }
}

/// The pipeline's own tables: dead letters and the deliveries already applied.
public enum PipelineSchema {
    /// Migrations of module "pipeline".
    public static let migrations = [
        Migration(module: "pipeline", version: 1, sql: """
            CREATE TABLE dead_letter (
                id INTEGER PRIMARY KEY,
                stage TEXT NOT NULL,
                subject TEXT NOT NULL,
                message_id TEXT,
                origin TEXT NOT NULL,
                line INTEGER NOT NULL,
                col INTEGER NOT NULL,
                code TEXT NOT NULL,
                reason TEXT NOT NULL,
                raw TEXT NOT NULL,
                received_at INTEGER NOT NULL);
            CREATE INDEX dead_letter_stage_code ON dead_letter (stage, code);
            CREATE INDEX dead_letter_received ON dead_letter (received_at);
            -- Stream sequences whose effects are committed: a redelivery after a crash
            -- between commit and ack is recognised and only acknowledged.
            CREATE TABLE applied_message (
                origin TEXT PRIMARY KEY,
                applied_at INTEGER NOT NULL) WITHOUT ROWID;
            CREATE INDEX applied_message_age ON applied_message (applied_at);
            """),
        Migration(module: "pipeline", version: 2, sql: """
            -- Attempts at a redelivered message, recorded before each attempt (a crash leaves
            -- its count behind): the poison-pill breaker's memory. A row goes when the
            -- message is applied or dead-lettered.
            CREATE TABLE intake_attempt (
                origin TEXT PRIMARY KEY,
                stage TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                failures INTEGER NOT NULL DEFAULT 0,
                last_error TEXT,
                updated_at INTEGER NOT NULL) WITHOUT ROWID;
            """),
    ]

    /// Stores a dead letter.
    static func insert(_ letter: DeadLetter, into database: Database) throws(StoreError) {
        try database.prepare("""
            INSERT INTO dead_letter (stage, subject, message_id, origin, line, col, code, reason, raw, received_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).run([.text(letter.stage), .text(letter.subject), letter.messageID.map(SQLValue.text) ?? .null, .text(letter.origin),
                      .integer(Int64(letter.line)), .integer(Int64(letter.column)), .text(letter.code), .text(letter.reason),
                      .text(letter.raw), .integer(letter.receivedAt)])
    }
}
