import Synchronization

/// A long-running part of clusterd (a loop, a subscription set, the scheduler): built by
/// ``ClusterdService/prepare()``, started after everything is built, stopped in the reverse
/// order. `clusterd run` runs each as a swift-service-lifecycle `Service` of one group;
/// tests start and stop them all through ``ClusterdService/start()`` and ``ClusterdService/stop()``.
public final class ServicePart: Sendable {
    /// What it is, for logs.
    public let name: String
    private let begin: @Sendable () -> Void
    private let end: @Sendable () -> Void
    private let state = Atomic<Int>(0)  // 0 built, 1 started, 2 stopped

    init(_ name: String, start: @escaping @Sendable () -> Void = {}, stop: @escaping @Sendable () -> Void) {
        self.name = name
        begin = start
        end = stop
    }

    /// Starts the part (once).
    public func start() {
        if state.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged { begin() }
    }

    /// Stops the part after the work in flight (once; a part never started is only released).
    public func stop() {
        if state.exchange(2, ordering: .acquiringAndReleasing) != 2 { end() }
    }
}
