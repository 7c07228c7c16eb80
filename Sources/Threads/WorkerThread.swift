import Foundation
import Synchronization

/// A dedicated thread for a loop that blocks (fetches, SQLite, waits), with a stop flag the
/// loop polls; `stop` waits until the loop has returned.
public final class WorkerThread: Sendable {
    /// A worker; nothing runs before ``start(name:_:)``.
    public init() {}

    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)

    /// Whether a stop was asked for.
    public var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Runs `body` on a new thread called `name` (as `top -H` and `perf` show it: `clusterd-`
    /// shortened to `cd-` and cut to the 15 bytes Linux keeps — a longer name is refused and
    /// the thread would keep its creator's).
    public func start(name: String, _ body: @escaping @Sendable () -> Void) {
        started.store(true, ordering: .relaxed)
        // The bytes themselves are cut (a cut through a multi-byte character, decoded again,
        // would come back longer than 15 bytes and be refused).
        let short = Array((name.hasPrefix("clusterd-") ? "cd-" + name.dropFirst("clusterd-".count) : name).utf8.prefix(15)).map(CChar.init(bitPattern:)) + [0]
        let t = Thread { [finished] in
            // Directly: Foundation's `Thread.name` applies it only once the creating thread has
            // recorded the new thread's handle, which a thread that starts at once can precede.
            #if os(Linux)
            _ = linuxSetThreadName(pthread_self(), short)
            #endif
            body()
            finished.signal()
        }
        t.start()
    }

    /// Sets the stop flag without waiting: several loops asked at once all stop after their
    /// step in flight, instead of each waiting for the ones stopped before it.
    public func requestStop() {
        stopping.store(true, ordering: .relaxed)
    }

    /// Sets the stop flag, runs `wake` (to interrupt a wait) and waits for the loop to end.
    public func stop(wake: () -> Void = {}) {
        stopping.store(true, ordering: .relaxed)
        wake()
        if started.exchange(false, ordering: .relaxed) { finished.wait() }
    }
}

#if os(Linux)
/// glibc's pthread_setname_np(3), which the Glibc module does not import without _GNU_SOURCE.
@_silgen_name("pthread_setname_np")
private func linuxSetThreadName(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> Int32
#endif
