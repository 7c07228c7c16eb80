import Synchronization

/// A value that a configuration reload replaces while threads that read it go on: each
/// reader takes ``current`` once per unit of work (a batch, a request), so one unit never
/// sees two versions.
public final class Reloadable<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    private let replaced = Atomic<Int>(0)

    /// Holds `value` until the first ``replace(with:)``.
    public init(_ value: Value) { storage = Mutex(value) }

    /// The value now.
    public var current: Value { storage.withLock { $0 } }

    /// Makes `value` the current one for every later reader.
    public func replace(with value: Value) {
        storage.withLock { $0 = value }
        replaced.add(1, ordering: .releasing)
    }

    /// How many times the value was replaced: a reader that caches what it derived from
    /// ``current`` compares this (one atomic load) to know when to derive again.
    public var version: Int { replaced.load(ordering: .acquiring) }
}
