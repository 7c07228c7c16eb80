/// cc-backend's monitoring health of a node (`schema.MonitoringState`) with the metrics
/// behind it: `full` when every expected metric is fresh, `failed` when none is, else
/// `partial`.
public struct NodeHealth: Sendable, Equatable {
    /// `full`, `partial` or `failed`.
    public var state: String
    /// Expected metrics with no data at all.
    public var missing: [String]
    /// Expected metrics whose newest sample is too old.
    public var degraded: [String]

    /// A health result.
    public init(state: String, missing: [String] = [], degraded: [String] = []) {
        self.state = state
        self.missing = missing
        self.degraded = degraded
    }

    /// Classifies by counts, as cc-backend does.
    public init(expected: Int, missing: [String], degraded: [String]) {
        let healthy = expected - missing.count - degraded.count
        let state = missing.isEmpty && degraded.isEmpty ? "full" : healthy <= 0 ? "failed" : "partial"
        self.init(state: state, missing: missing, degraded: degraded)
    }

    /// cc-backend's `health_metrics` JSON.
    public var metricsJSON: String {
        func list(_ a: [String]) -> String { "[" + a.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
        return "{\"missing\":\(list(missing)),\"degraded\":\(list(degraded))}"
    }
}

/// Answers the health of a node from the metric data clusterd holds.
public protocol NodeHealthProbe: Sendable {
    /// Health of `hostname` in `cluster`/`subCluster` at `now` (epoch seconds).
    func health(cluster: String, subCluster: String, hostname: String, now: Int64) -> NodeHealth
}
