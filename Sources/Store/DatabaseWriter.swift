import Foundation
import Synchronization

/// The process's one read-write connection and the lock that serialises every use of it:
/// the job and node stages, health, alerts, fleet, maintenance and retention write one
/// transaction after another, so they never meet in `SQLITE_BUSY`; everything else reads
/// through read-only connections. A recursive lock, so a unit of work that calls another
/// (a batch that queues alerts) cannot deadlock itself.
public final class DatabaseWriter: @unchecked Sendable {
    /// The connection. Use it only inside ``perform(_:)`` (or while holding ``lock``):
    /// stages keep it to prepare their statements.
    public let database: Database
    /// The lock ``perform(_:)`` takes, for parts that guard a longer unit of work with it.
    public let lock = NSRecursiveLock()

    /// Opens the read-write connection to `path`.
    public init(path: String, busyTimeoutMilliseconds: Int32 = 5000) throws(StoreError) {
        database = try Database(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        lock.name = "clusterd.writer"
    }

    /// Runs `body` with the connection to itself.
    public func perform<T>(_ body: (Database) throws -> T) rethrows -> T {
        lock.lock()
        depth += 1
        let since = depth == 1 ? ContinuousClock.now : nil
        defer {
            depth -= 1
            if let since {
                let d = (ContinuousClock.now - since).components
                held.add(d.seconds * 1_000_000_000 + d.attoseconds / 1_000_000_000, ordering: .relaxed)
            }
            lock.unlock()
        }
        return try body(database)
    }

    /// How long ``perform(_:)`` has held the connection in all (the outermost calls): the one
    /// writer's busy time, which bounds every stage's throughput together.
    /// Read without the lock: a `/metrics` scrape does not wait for the batch in flight.
    public var busy: Duration { .nanoseconds(held.load(ordering: .relaxed)) }
    private let held = Atomic<Int64>(0)  // nanoseconds
    private var depth = 0  // nesting of perform (under the lock)

    /// Runs `body` in one transaction, alone on the connection.
    public func transaction<T>(_ body: (Database) throws -> T) throws -> T {
        try perform { db in try db.transaction { try body(db) } }
    }
}
