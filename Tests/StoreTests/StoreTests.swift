import Foundation
import Store
import Testing

/// The SQLite wrapper: the one writer serialises units of work from many threads, and the
/// outbox keeps headers besides the message id.
@Suite(.timeLimit(.minutes(1))) struct StoreTests {
    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-store-\(UUID().uuidString).db").path
    }

    @Test func theWriterSerialisesTransactionsOfManyThreadsWithoutBusyErrors() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // busy timeout 0: a second connection writing at once would fail at once.
        let writer = try DatabaseWriter(path: path, busyTimeoutMilliseconds: 0)
        try writer.perform { try $0.execute("CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0)") }
        let failures = LockedList()
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<200 {
                do {
                    try writer.transaction { db in
                        let n = try db.prepare("SELECT n FROM counter").first { $0.int(0) } ?? 0
                        try db.prepare("UPDATE counter SET n = ?").run([.integer(n + 1)])
                    }
                } catch { failures.append("\(error)") }
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
        #expect(try writer.perform { try $0.prepare("SELECT n FROM counter").first { $0.int(0) } } == 1600)
    }

    /// Each event is applied in a savepoint, whose journal of changed pages SQLite spills into
    /// a temporary file (`etilqs_…`, unlinked at once) past 64 kB — ~110 MB of writes per
    /// 20,000 jobs. The writer keeps it in memory: no such file is ever open.
    @Test func savepointsThatChangeManyPagesOpenNoTemporaryFile() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try DatabaseWriter(path: path)
        try writer.perform { try $0.execute("CREATE TABLE t (k TEXT NOT NULL, v BLOB NOT NULL); CREATE INDEX t_k ON t (k)") }
        var openTemporaries: [String] = []
        try writer.transaction { db in
            for round in 0..<20 {
                try db.savepoint {
                    // ~50 pages of rows and index entries in one savepoint: well past the spill point.
                    for i in 0..<50 {
                        try db.prepare("INSERT INTO t (k, v) VALUES (?, ?)").run([.text("\((i * 7919 + round * 104_729) % 100_003)"), .blob(Array(repeating: UInt8(i), count: 3000))])
                    }
                }
            }
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            openTemporaries = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)") }.filter { $0.contains("etilqs_") }
        }
        #expect(openTemporaries.isEmpty, "\(openTemporaries)")
        #expect(try writer.perform { try $0.prepare("SELECT count(*) FROM t").first { $0.int(0) } } == 1000)
    }

    /// The writer's own checkpoint waits until the log is ``WALCheckpointer/writerPages``
    /// long; below that, only the checkpointer's thread copies the log into the database file
    /// — here ~500 pages, committed by the writer, reach the file while the writer goes on.
    @Test func theCheckpointerCopiesTheLogIntoTheDatabaseFileOnItsOwnThread() throws {
        let path = Self.temporaryPath()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let writer = try DatabaseWriter(path: path)
        try writer.perform { try $0.execute("PRAGMA wal_autocheckpoint=\(WALCheckpointer.writerPages); CREATE TABLE t (v BLOB NOT NULL)") }
        func fileSize() -> Int { ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0 }
        let checkpointer = try WALCheckpointer(path: path, interval: .milliseconds(10))
        for _ in 0..<10 {
            try writer.transaction { db in for i in 0..<50 { try db.prepare("INSERT INTO t (v) VALUES (?)").run([.blob(Array(repeating: UInt8(i), count: 3900))]) } }
        }
        let before = fileSize()
        #expect(before < 100_000, "the writer checkpointed by itself: \(before) bytes")
        checkpointer.start()
        defer { checkpointer.stop() }
        let deadline = Date().addingTimeInterval(20)
        while fileSize() < 2_000_000 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(fileSize() >= 2_000_000, "\(fileSize()) bytes after \(checkpointer.checkpoints) checkpoints")
        #expect(try writer.perform { try $0.prepare("SELECT count(*) FROM t").first { $0.int(0) } } == 500)
    }

    /// A write refused while another connection holds the lock must not leave its statement
    /// active: later writes and COMMITs on the connection go on once the lock is gone.
    @Test func aWriteRefusedByALockDoesNotBlockLaterWrites() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let db = try Database(path: path, busyTimeoutMilliseconds: 0)
        try db.execute("CREATE TABLE t (n INTEGER NOT NULL)")
        let locker = try Database(path: path)
        try locker.execute("BEGIN IMMEDIATE")
        #expect(throws: StoreError.self) { try db.prepare("INSERT INTO t SELECT count(*) FROM t").run() }
        try locker.execute("INSERT INTO t VALUES (100); COMMIT")
        try db.transaction { try db.prepare("INSERT INTO t SELECT count(*) FROM t").run() }
        #expect(try db.prepare("SELECT count(*) FROM t").first { $0.int(0) } == 2)
    }

    @Test func outboxMessagesKeepTheirHeaders() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let db = try Database(path: path)
        try db.migrate(Outbox.migrations)
        let outbox = Outbox(db)
        let delete = OutboxMessage(subject: "$KV.b.k", messageID: "kv-1", payload: [], headers: ["KV-Operation": "DEL", "X-A": "b: c"])
        try outbox.append(delete)
        try outbox.append(OutboxMessage(subject: "s", messageID: "m-2", payload: Array("x".utf8)))
        let pending = try outbox.pending()
        #expect(pending.map(\.headers) == [["KV-Operation": "DEL", "X-A": "b: c"], [:]])
        #expect(pending.map(\.messageID) == ["kv-1", "m-2"])
    }
}

final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func append(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}
