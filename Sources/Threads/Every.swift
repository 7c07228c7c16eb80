import Foundation

/// True at most once per `interval` seconds (chores that are cheap to skip, costly to repeat).
public final class Every: @unchecked Sendable {
    private let lock = NSLock()
    private var last: Int64 = 0
    /// Seconds between two true answers.
    public let interval: Int64

    /// True at once, then after `seconds`.
    public init(seconds: Int64) { interval = seconds }

    /// True when `interval` has passed since the last true answer (epoch seconds `now`).
    public func due(_ now: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard now - last >= interval else { return false }
        last = now
        return true
    }
}
