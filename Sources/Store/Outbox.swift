/// A message a stage wants published, written in the same transaction as the state change
/// that caused it and published after the commit.
public struct OutboxMessage: Sendable, Equatable {
    /// Row id (0 before it is stored).
    public var id: Int64
    /// NATS subject.
    public var subject: String
    /// Deterministic `Nats-Msg-Id`, so a re-publish after a crash is dropped by JetStream's
    /// duplicate window.
    public var messageID: String
    /// The body.
    public var payload: [UInt8]
    /// Headers besides `Nats-Msg-Id` (e.g. `KV-Operation: DEL` for a KV delete).
    public var headers: [String: String]

    /// Creates a message to publish.
    public init(id: Int64 = 0, subject: String, messageID: String, payload: [UInt8], headers: [String: String] = [:]) {
        self.id = id
        self.subject = subject
        self.messageID = messageID
        self.payload = payload
        self.headers = headers
    }

    /// Headers as stored: `name: value` lines, sorted.
    public var headerText: String { headers.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)\n" }.joined() }

    static func headers(from text: String) -> [String: String] {
        var headers: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[String(line[..<colon])] = String(line[line.index(after: colon)...].dropFirst())
        }
        return headers
    }
}

/// The transactional outbox table.
public struct Outbox {
    /// The table.
    public static let migrations = [
        Migration(module: "outbox", version: 1, sql: """
            CREATE TABLE outbox (
                id INTEGER PRIMARY KEY,
                subject TEXT NOT NULL,
                message_id TEXT NOT NULL,
                payload BLOB NOT NULL,
                created_at INTEGER NOT NULL DEFAULT (unixepoch()));
            """),
        // Messages that can never be published (larger than the broker takes): kept for
        // inspection instead of blocking every later message.
        Migration(module: "outbox", version: 2, sql: """
            CREATE TABLE outbox_parked (
                id INTEGER PRIMARY KEY,
                subject TEXT NOT NULL,
                message_id TEXT NOT NULL,
                payload BLOB NOT NULL,
                reason TEXT NOT NULL,
                parked_at INTEGER NOT NULL DEFAULT (unixepoch()));
            """),
        // Headers besides Nats-Msg-Id: KV mirror updates go through the outbox too.
        Migration(module: "outbox", version: 3, sql: """
            ALTER TABLE outbox ADD COLUMN headers TEXT NOT NULL DEFAULT '';
            ALTER TABLE outbox_parked ADD COLUMN headers TEXT NOT NULL DEFAULT '';
            """),
    ]

    let database: Database

    /// An outbox over `database` (migrated with ``migrations``).
    public init(_ database: Database) { self.database = database }

    /// Adds a message; call inside the transaction that makes the change.
    public func append(_ message: OutboxMessage) throws(StoreError) {
        try database.prepare(static: "INSERT INTO outbox (subject, message_id, payload, headers) VALUES (?, ?, ?, ?)")
            .run([.text(message.subject), .text(message.messageID), .blob(message.payload), .text(message.headerText)])
        database.outboxAppends += 1
    }

    /// The oldest `limit` messages not yet published.
    public func pending(limit: Int = 1000) throws(StoreError) -> [OutboxMessage] {
        try database.prepare("SELECT id, subject, message_id, payload, headers FROM outbox ORDER BY id LIMIT ?")
            .rows([.integer(Int64(limit))]) {
                OutboxMessage(id: $0.int(0), subject: $0.text(1), messageID: $0.text(2), payload: $0.blob(3), headers: OutboxMessage.headers(from: $0.text(4)))
            }
    }

    /// Moves a message that can never be published out of the way, with the reason.
    public func park(_ message: OutboxMessage, reason: String) throws(StoreError) {
        try database.prepare("INSERT INTO outbox_parked (id, subject, message_id, payload, reason, headers) VALUES (?, ?, ?, ?, ?, ?)")
            .run([.integer(message.id), .text(message.subject), .text(message.messageID), .blob(message.payload), .text(reason), .text(message.headerText)])
        try database.prepare("DELETE FROM outbox WHERE id = ?").run([.integer(message.id)])
    }

    /// Removes the messages queued before `createdAt` (epoch seconds) without publishing them:
    /// a standby replica's copies of what the publishing replica sent. Cheap when called often
    /// (rows are in time order; it reads only the old ones and the first younger one).
    @discardableResult
    public func removeQueued(before createdAt: Int64) throws(StoreError) -> Int {
        try database.prepare("""
            DELETE FROM outbox WHERE id < coalesce((SELECT id FROM outbox WHERE created_at >= ? ORDER BY id LIMIT 1),
                                                   (SELECT max(id) + 1 FROM outbox))
            """).run([.integer(createdAt)])
        return database.changes
    }

    /// Removes messages that were published.
    public func remove(upTo id: Int64) throws(StoreError) {
        try database.prepare("DELETE FROM outbox WHERE id <= ?").run([.integer(id)])
    }
}
