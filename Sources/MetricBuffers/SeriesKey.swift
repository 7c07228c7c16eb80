/// One series: a metric of a host at one scope and id (`hwthread` 17, `accelerator`
/// 00000000:0E:00.0, `node` with an empty id).
public struct SeriesKey: Sendable, Hashable {
    public var cluster: String
    public var host: String
    public var metric: String
    /// cc-metric-collector's `type` tag.
    public var scope: String
    /// `type-id`, with `/stype-id` appended for sub-devices.
    public var id: String

    /// A key.
    public init(cluster: String, host: String, metric: String, scope: String, id: String) {
        self.cluster = cluster
        self.host = host
        self.metric = metric
        self.scope = scope
        self.id = id
    }
}

/// A host's metric, across scopes and ids.
struct HostMetric: Hashable {
    var cluster: String
    var host: String
    var metric: String
}
