import Foundation
import Synchronization

/// Where the scheduler's time comes from: the system clock in service, a hand-moved one in
/// tests (``ManualClock``), so a test of retention or expiry moves time instead of waiting.
public protocol SchedulerClock: Sendable {
    /// Epoch seconds now.
    func now() -> Int64
}

/// The system clock.
public struct SystemClock: SchedulerClock {
    /// The system clock.
    public init() {}
    /// Epoch seconds now.
    public func now() -> Int64 { Int64(Date().timeIntervalSince1970) }
}

/// A clock that moves only when told to (tests).
public final class ManualClock: SchedulerClock {
    private let time: Atomic<Int64>

    /// A clock standing at `start` (epoch seconds).
    public init(_ start: Int64) { time = Atomic(start) }

    /// Epoch seconds now.
    public func now() -> Int64 { time.load(ordering: .sequentiallyConsistent) }

    /// Moves the clock forward by `seconds`.
    public func advance(by seconds: Int64) { time.add(seconds, ordering: .sequentiallyConsistent) }
}

/// The one scheduler of clusterd's periodic chores (held-stop expiry, retention, pruning,
/// checkpoints): each task runs every `interval` seconds of its clock, on the scheduler's own
/// thread, one at a time, first at its first check after start. A task that throws is
/// logged by its caller's closure; the scheduler goes on.
public final class Scheduler: @unchecked Sendable {
    struct Task {
        let name: String
        let interval: Int64
        var due: Int64
        let body: @Sendable (Int64) -> Void
    }

    /// The clock the tasks see.
    public let clock: any SchedulerClock
    private let tasks = Mutex<[Task]>([])
    private let wake = DispatchSemaphore(value: 0)
    private let worker = WorkerThread()
    /// How often the thread looks at the clock (seconds): a manual clock is seen to move
    /// within this, and ``runDue()`` runs at once.
    private let resolution: Double

    /// A scheduler on `clock` (nothing runs before ``start()``).
    public init(clock: any SchedulerClock = SystemClock(), resolution: Double = 1) {
        self.clock = clock
        self.resolution = resolution
    }

    /// Adds a task running every `interval` seconds, first at the next check.
    public func every(_ interval: Int64, _ name: String, _ body: @escaping @Sendable (Int64) -> Void) {
        tasks.withLock { $0.append(Task(name: name, interval: max(1, interval), due: .min, body: body)) }
        wake.signal()
    }

    /// Names of the tasks, in the order they were added.
    public var taskNames: [String] { tasks.withLock { $0.map(\.name) } }

    /// Starts the scheduler's thread.
    public func start() {
        worker.start(name: "clusterd-scheduler") { [self] in
            while !worker.isStopping {
                runDue()
                _ = wake.wait(timeout: .now() + resolution)
            }
        }
    }

    /// Stops after the task in flight.
    public func stop() { worker.stop { [wake] in wake.signal() } }

    /// Runs every task that is due now, on the calling thread; returns their names.
    @discardableResult
    public func runDue() -> [String] {
        let now = clock.now()
        let due = tasks.withLock { list -> [Task] in
            var due: [Task] = []
            for i in list.indices where list[i].due <= now {
                due.append(list[i])
                list[i].due = now + list[i].interval
            }
            return due
        }
        for task in due { task.body(now) }
        return due.map(\.name)
    }
}
