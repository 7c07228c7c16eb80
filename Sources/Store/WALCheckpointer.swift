import Foundation
import Synchronization
import Threads

/// Copies the write-ahead log into the database file on a thread and connection of its own,
/// so that the one writer seldom does. SQLite's automatic checkpoint runs inside the commit
/// that crosses its threshold, with an fsync of the log and one of the database: the writer,
/// which bounds every stage's throughput, then waited for the disk (`clusterd bench jobs`:
/// ~10 % of the job path). A passive checkpoint never waits for the writer nor blocks it;
/// the writer's own checkpoint stays as a backstop (``writerPages``) for a log this thread
/// has not caught up with — it then finds most pages copied already.
public final class WALCheckpointer: Sendable {
    /// The log length (pages) at which the writer checkpoints by itself (SQLite's default is
    /// 1,000): with this thread running, only when it falls behind.
    public static let writerPages = 8_192

    private let database: Database
    private let interval: Duration
    private let worker = WorkerThread()
    private let wake = DispatchSemaphore(value: 0)
    private let runs = Atomic<Int>(0)
    private let failing = Atomic<Bool>(false)
    private let report: @Sendable (StoreError?) -> Void

    /// A checkpointer of the database at `path` (opens its connection now); runs from
    /// ``start()`` every `interval`. `report` hears of the first failure of a run of them
    /// (each is tried again at the next interval) and of the recovery (nil), not every try.
    public init(path: String, interval: Duration = .milliseconds(100),
                report: @escaping @Sendable (StoreError?) -> Void = { _ in }) throws(StoreError) {
        database = try Database(path: path)
        self.interval = interval
        self.report = report
    }

    /// Checkpoints run so far, successful or not.
    public var checkpoints: Int { runs.load(ordering: .relaxed) }

    /// Starts the thread.
    public func start() {
        worker.start(name: "clusterd-checkpoint") { [self] in
            while !worker.isStopping {
                _ = wake.wait(timeout: .now() + .microseconds(Int(interval / .microseconds(1))))
                checkpoint()
            }
        }
    }

    /// Stops the thread after the checkpoint in flight.
    public func stop() {
        worker.stop { wake.signal() }
    }

    /// One passive checkpoint: copies what the log holds beyond the last one, as far as no
    /// reader still needs older pages.
    func checkpoint() {
        do {
            try database.execute("PRAGMA wal_checkpoint(PASSIVE)")
            if failing.exchange(false, ordering: .relaxed) { report(nil) }
        } catch {
            if !failing.exchange(true, ordering: .relaxed) { report(error) }
        }
        runs.add(1, ordering: .relaxed)
    }
}
