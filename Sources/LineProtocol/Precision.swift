/// The unit of the timestamps in a batch of line protocol.
///
/// Precision is not part of the line: the sender and receiver agree on it out of band
/// (InfluxDB's `precision` request parameter, cc-metric-collector's sink `precision`).
public enum Precision: String, Sendable, CaseIterable, Hashable {
    case nanoseconds = "ns"
    case microseconds = "us"
    case milliseconds = "ms"
    case seconds = "s"

    /// Nanoseconds per unit of this precision.
    @inlinable
    public var nanosecondsPerUnit: Int64 {
        switch self {
        case .nanoseconds: 1
        case .microseconds: 1_000
        case .milliseconds: 1_000_000
        case .seconds: 1_000_000_000
        }
    }

    /// Scales a timestamp in this precision to nanoseconds, or returns nil on int64 overflow.
    @inlinable
    public func nanoseconds(_ value: Int64) -> Int64? {
        let (result, overflow) = value.multipliedReportingOverflow(by: nanosecondsPerUnit)
        return overflow ? nil : result
    }
}
