import Model

/// A stored job, as the stop path and the archive need it.
public struct JobRecord: Sendable, Equatable {
    /// Database id (`job.id`).
    public var id: Int64
    /// The start as stored (canonical JSON of the start event).
    public var start: JobStart
    /// Assigned subcluster.
    public var subCluster: String
    /// Current state.
    public var state: JobState
    /// Seconds; set by the stop.
    public var duration: Int64
    /// 0 off, 1 pending archive, 2 archive failed, 3 archived.
    public var monitoringStatus: Int64

    /// A record.
    public init(id: Int64, start: JobStart, subCluster: String, state: JobState, duration: Int64, monitoringStatus: Int64) {
        self.id = id
        self.start = start
        self.subCluster = subCluster
        self.state = state
        self.duration = duration
        self.monitoringStatus = monitoringStatus
    }

    /// meta.json content (ClusterCockpit `schema.Job`) without metric statistics.
    public var metaJSON: String { metaJSON(statistics: nil, footprint: nil) }

    /// meta.json content with the job's metric `statistics` (an empty object when none) and
    /// the `footprint` computed from its metrics (else the one it was started with).
    public func metaJSON(statistics: JSONValue?, footprint: [(key: String, value: Double)]?) -> String {
        var start = self.start
        start.monitoringStatus = monitoringStatus
        if let footprint, !footprint.isEmpty { start.footprint = Dictionary(footprint, uniquingKeysWith: { _, b in b }) }
        var w = JSONStreamWriter(capacity: 2048)
        w.beginObject()
        start.writeMembers(to: &w, state: state, duration: duration, subCluster: subCluster)
        w.key("statistics")
        w.value(statistics ?? .object([]))
        w.endObject()
        return w.text
    }
}
