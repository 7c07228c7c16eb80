/// A failed database operation, with SQLite's code and message.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// SQLite's primary result code (e.g. 5 busy, 13 full, 19 constraint).
    public let code: Int32
    /// SQLite's message.
    public let message: String
    /// What clusterd was doing.
    public let context: String

    /// Creates an error.
    public init(code: Int32, message: String, context: String) {
        self.code = code
        self.message = message
        self.context = context
    }

    /// True when retrying later may succeed (busy, locked, disk full, I/O error, out of
    /// memory): the message must be redelivered, never acknowledged or dead-lettered.
    public var isTransient: Bool {
        switch code & 0xff {
        case 5, 6, 7, 10, 13, 14, 15: true  // BUSY LOCKED NOMEM IOERR FULL CANTOPEN PROTOCOL
        default: false
        }
    }

    /// True for a violated constraint (UNIQUE, CHECK, NOT NULL, foreign key).
    public var isConstraint: Bool { code & 0xff == 19 }

    public var description: String { "database: \(context): \(message) (code \(code))" }
}
