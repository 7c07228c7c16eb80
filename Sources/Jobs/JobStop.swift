import Model

/// A `stop_job` event (cc-backend's `StopJobAPIRequest`).
public struct JobStop: Sendable, Equatable {
    static let strictKeys = StrictKeys(["jobId", "cluster", "startTime", "jobState", "stopTime", "state"])
    /// The scheduler's job id.
    public var jobId: Int64
    /// Narrows the lookup to one cluster (otherwise every cluster, newest job first).
    public var cluster: String?
    /// Narrows the lookup to one start (requeue-safe).
    public var startTime: Int64?
    /// Final state; empty means completed.
    public var state: JobState
    /// Epoch seconds.
    public var stopTime: Int64

    /// A stop.
    public init(jobId: Int64, cluster: String? = nil, startTime: Int64? = nil, state: JobState = .completed, stopTime: Int64) {
        self.jobId = jobId
        self.cluster = cluster
        self.startTime = startTime
        self.state = state
        self.stopTime = stopTime
    }

    /// Decodes the event JSON. ClusterCockpit's own docs write the state as `state`; that
    /// spelling is accepted as `jobState` (both given and different is an error).
    public init(json: JSONValue) throws(JobRejection) {
        self = try JobRejection.decoding { try JobStop(parsing: json) }
    }

    private init(parsing json: JSONValue) throws {
        let o = try StrictObject(json, keys: Self.strictKeys)
        guard let jobId = try o.int("jobId", JobStart.jobIds) else { throw JSONFieldError(path: "jobId", reason: "is required", code: "missing_field") }
        guard let stopTime = try JobStart.epoch(o, "stopTime") else { throw JSONFieldError(path: "stopTime", reason: "is required (epoch seconds)", code: "missing_field") }
        let jobState = try o.string("jobState") ?? ""
        let legacy = try o.string("state") ?? ""
        if !jobState.isEmpty, !legacy.isEmpty, jobState != legacy {
            throw JobRejection.invalidValue("jobState \"\(jobState)\" contradicts state \"\(legacy)\"")
        }
        let name = jobState.isEmpty ? legacy : jobState
        var state = JobState.completed
        if !name.isEmpty {
            guard let s = JobState(rawValue: name) else {
                throw JobRejection.invalidValue("jobState: \"\(name)\" is not one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            state = s
        }
        let cluster = try o.name("cluster")
        self.init(jobId: jobId, cluster: cluster?.isEmpty == true ? nil : cluster,
                  startTime: try JobStart.epoch(o, "startTime"), state: state, stopTime: stopTime)
    }

    /// Canonical JSON (stored with held stops and compared on redelivery).
    public var json: JSONValue {
        var b = JSONObjectBuilder()
        b.add("jobId", jobId)
        b.addIfPresent("cluster", cluster.map(JSONValue.string))
        b.addIfPresent("startTime", startTime.map(JSONValue.integer))
        b.add("jobState", state.rawValue)
        b.add("stopTime", stopTime)
        return b.value
    }
}
