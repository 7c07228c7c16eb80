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

/// The one scheduler of clusterd's periodic work (held-stop expiry, retention, pruning,
/// checkpoints, fleet polls): each task runs every `interval` seconds of its clock, first at
/// its first check after start. Tasks run one at a time on the scheduler's thread, except a
/// task given a lane of its own (slow work such as HTTP polls): it runs on the lane's
/// thread, so it never delays the others, and a run still going when the next is due skips
/// that one (``skipped``). A task that throws is logged by its own closure; the scheduler
/// goes on.
public final class Scheduler: @unchecked Sendable {
    struct Task {
        let name: String
        let interval: Int64
        var due: Int64
        let lane: Lane?
        let body: @Sendable (Int64) -> Void
    }

    /// A task's own thread; `busy` while a run is going.
    final class Lane: Sendable {
        let queue: DispatchQueue
        let busy = Atomic<Bool>(false)
        init(_ name: String) { queue = DispatchQueue(label: "clusterd-\(name)") }
    }

    /// The clock the tasks see.
    public let clock: any SchedulerClock
    private let tasks = Mutex<[Task]>([])
    private let wake = DispatchSemaphore(value: 0)
    private let worker = WorkerThread()
    private let skips = Atomic<Int>(0)
    /// How often the thread looks at the clock (seconds): a manual clock is seen to move
    /// within this, and ``runDue()`` runs at once.
    private let resolution: Double

    /// A scheduler on `clock` (nothing runs before ``start()``).
    public init(clock: any SchedulerClock = SystemClock(), resolution: Double = 1) {
        self.clock = clock
        self.resolution = resolution
    }

    /// Adds a task running every `interval` seconds, first at the next check; with
    /// `ownLane`, on a thread of its own.
    public func every(_ interval: Int64, _ name: String, ownLane: Bool = false, _ body: @escaping @Sendable (Int64) -> Void) {
        let task = Task(name: name, interval: max(1, interval), due: .min, lane: ownLane ? Lane(name) : nil, body: body)
        tasks.withLock { $0.append(task) }
        wake.signal()
    }

    /// Names of the tasks, in the order they were added.
    public var taskNames: [String] { tasks.withLock { $0.map(\.name) } }

    /// Runs of own-lane tasks skipped because the previous run was still going.
    public var skipped: Int { skips.load(ordering: .relaxed) }

    /// Starts the scheduler's thread.
    public func start() {
        worker.start(name: "clusterd-scheduler") { [self] in
            while !worker.isStopping {
                runDue()
                _ = wake.wait(timeout: .now() + resolution)
            }
        }
    }

    /// Stops after the tasks in flight (own lanes included).
    public func stop() {
        worker.stop { [wake] in wake.signal() }
        for lane in tasks.withLock({ $0.compactMap(\.lane) }) { lane.queue.sync {} }
    }

    /// Runs every task that is due now: on the calling thread, or started on its own lane.
    /// Returns their names.
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
        var ran: [String] = []
        for task in due {
            guard let lane = task.lane else {
                task.body(now)
                ran.append(task.name)
                continue
            }
            guard !lane.busy.exchange(true, ordering: .acquiringAndReleasing) else {
                skips.add(1, ordering: .relaxed)
                continue
            }
            lane.queue.async {
                task.body(now)
                lane.busy.store(false, ordering: .releasing)
            }
            ran.append(task.name)
        }
        return ran
    }
}
