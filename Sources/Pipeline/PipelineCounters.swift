import Synchronization

/// Counters of what the pipeline did, by name (`messages`, `events.started`,
/// `dead_letters.unknown_cluster`, ...); read by logs, tests and (later) the metrics endpoint.
public final class PipelineCounters: Sendable {
    private let values = Mutex<[String: Int]>([:])

    /// Empty counters.
    public init() {}

    /// Adds `n` to `name`.
    public func add(_ name: String, _ n: Int = 1) {
        values.withLock { $0[name, default: 0] += n }
    }

    /// The value of `name`.
    public subscript(name: String) -> Int { values.withLock { $0[name] ?? 0 } }

    /// All counters.
    public var snapshot: [String: Int] { values.withLock { $0 } }
}
