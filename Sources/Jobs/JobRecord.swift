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

    /// meta.json content (ClusterCockpit `schema.Job`).
    public var metaJSON: String {
        var start = self.start
        start.monitoringStatus = monitoringStatus
        return start.json(state: state, duration: duration, subCluster: subCluster).jsonText
    }
}
