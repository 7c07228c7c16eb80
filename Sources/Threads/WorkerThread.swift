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

    /// Runs `body` on a new thread called `name`.
    public func start(name: String, _ body: @escaping @Sendable () -> Void) {
        started.store(true, ordering: .relaxed)
        let t = Thread { [finished] in
            body()
            finished.signal()
        }
        t.name = name
        t.start()
    }

    /// Sets the stop flag, runs `wake` (to interrupt a wait) and waits for the loop to end.
    public func stop(wake: () -> Void = {}) {
        stopping.store(true, ordering: .relaxed)
        wake()
        if started.exchange(false, ordering: .relaxed) { finished.wait() }
    }
}
