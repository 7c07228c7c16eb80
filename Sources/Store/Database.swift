import CSQLite

/// One SQLite connection (WAL mode). Not thread-safe: each connection belongs to one thread
/// (clusterd has a single writer; readers open their own connections).
public final class Database: @unchecked Sendable {
    let db: OpaquePointer
    /// The file path.
    public let path: String
    private var statements: [String: Statement] = [:]
    private var staticStatements: [UInt: Statement] = [:]
    /// Rows appended to the outbox on this connection so far (``Outbox/append(_:)``): a loop
    /// compares it around its batch to know whether the batch left anything to publish.
    package var outboxAppends = 0

    /// Opens (creating if needed) the database at `path`, in WAL mode with
    /// `synchronous=NORMAL` and temporary storage in memory (read-write), foreign keys on and a
    /// busy timeout.
    public init(path: String, busyTimeoutMilliseconds: Int32 = 5000, readOnly: Bool = false) throws(StoreError) {
        _ = Self.configured
        var handle: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let handle { sqlite3_close_v2(handle) }
            throw StoreError(code: rc, message: message, context: "open \(path)")
        }
        db = handle
        self.path = path
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
        if !readOnly {
            try execute("PRAGMA journal_mode=WAL")
            try execute("PRAGMA synchronous=NORMAL")
            // Each event's savepoint journals the pages it changes; past 64 kB that journal
            // spilled into temporary files (`etilqs_*`: ~110 MB of writes per 20,000 jobs in
            // `clusterd bench jobs --writer-only`). In memory it is a copy and no system call.
            try execute("PRAGMA temp_store=MEMORY")
        }
        try execute("PRAGMA foreign_keys=ON")
    }

    /// Process-wide settings, made once before the first connection opens (SQLite refuses
    /// them later; then they stay at their defaults, which only costs speed).
    private static let configured: Bool = csqlite_disable_memstatus() == SQLITE_OK

    deinit {
        statements.removeAll()
        staticStatements.removeAll()
        sqlite3_close_v2(db)
    }

    /// Runs one or more statements without results.
    public func execute(_ sql: String) throws(StoreError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(err)
            throw StoreError(code: rc, message: message, context: String(sql.prefix(80)))
        }
    }

    /// A prepared statement for `sql`, cached per connection and reset for reuse.
    public func prepare(_ sql: String) throws(StoreError) -> Statement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        let statement = try Statement(database: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    /// The same for SQL written in the code: cached by the text's address, so the hot path
    /// pays no hashing of a long statement per call (~4 % of the job intake's time in `perf`).
    public func prepare(static sql: StaticString) throws(StoreError) -> Statement {
        let key = UInt(bitPattern: sql.utf8Start)
        if let cached = staticStatements[key] {
            cached.reset()
            return cached
        }
        let statement = try prepare(sql.description)
        staticStatements[key] = statement
        return statement
    }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction; commits when it returns, rolls back
    /// when it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        // Prepared once (cached) rather than compiled per call: a batch has one of each, but
        // every event a savepoint, and compiling one cost more than its work.
        try prepare(static: "BEGIN IMMEDIATE").run()
        do {
            let value = try body()
            try prepare(static: "COMMIT").run()
            return value
        } catch {
            try? prepare(static: "ROLLBACK").run()
            throw error
        }
    }

    /// Runs `body` inside a savepoint: when it throws, only its own changes are undone and
    /// the enclosing transaction goes on (one bad event never undoes the rest of a batch).
    public func savepoint<T>(_ body: () throws -> T) throws -> T {
        try prepare(static: "SAVEPOINT event").run()
        do {
            let value = try body()
            try prepare(static: "RELEASE event").run()
            return value
        } catch {
            try? prepare(static: "ROLLBACK TO event").run()
            try? prepare(static: "RELEASE event").run()
            throw error
        }
    }

    /// Whether ``event(_:)`` opens a savepoint per event: set while a batch is redone after
    /// an event failed halfway (``PartialEvent``).
    public var carefulEvents = false

    /// An event failed after it had changed rows: without its savepoint those changes cannot
    /// be undone alone, so the batch is rolled back and redone with ``carefulEvents``.
    public struct PartialEvent: Error, CustomStringConvertible {
        /// What the event failed with.
        public let underlying: any Error
        public var description: String { "an event failed after changing rows (\(underlying)); its batch is redone with a savepoint per event" }
    }

    /// Runs one event of a batch. A savepoint per event costs ~3.5 µs (its statements and the
    /// copy of every page the event changes: `clusterd bench jobs --writer-only` 33–34 k →
    /// 37–38 k events/s without), and almost every event either applies or is refused before
    /// it writes — so the first run of a batch has none: a failure before any change needs no
    /// undo, one after a change throws ``PartialEvent`` (a transient error goes up as it is: the
    /// whole batch is retried anyway). With ``carefulEvents``, each event has its savepoint.
    public func event<T>(_ body: () throws -> T) throws -> T {
        if carefulEvents { return try savepoint(body) }
        let before = sqlite3_total_changes64(db)
        do {
            return try body()
        } catch let error as StoreError where error.isTransient {
            throw error
        } catch {
            if sqlite3_total_changes64(db) != before { throw PartialEvent(underlying: error) }
            throw error
        }
    }

    /// The rowid of the last insert.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }

    /// Rows changed by the last statement.
    public var changes: Int { Int(sqlite3_changes(db)) }

    func error(_ rc: Int32, _ context: String) -> StoreError {
        StoreError(code: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)), context: context)
    }
}
