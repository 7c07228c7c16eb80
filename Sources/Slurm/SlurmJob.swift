import Model

/// One job as Slurm reports it (`squeue --json`, `sacct --json`), with what clusterd needs
/// for ClusterCockpit's start_job and stop_job. Both the controller hooks and the
/// reconciliation build their events from this one type, so the same job always yields the
/// same event and the same message id.
public struct SlurmJob: Sendable, Equatable {
    public var id: Int64
    public var cluster: String
    public var user: String
    public var group: String?
    public var account: String?
    public var partition: String?
    public var name: String?
    /// The allocated hosts, expanded from Slurm's hostlist.
    public var nodes: [String]
    public var cpus: Int64?
    /// Seconds (Slurm gives minutes); nil when unlimited.
    public var walltime: Int64?
    public var submitTime: Int64?
    public var startTime: Int64?
    public var endTime: Int64?
    /// Slurm's state words, e.g. ["COMPLETING"] or ["CANCELLED"].
    public var state: [String]
    public var reason: String?
    /// The raw wait status (`exit_code`): exit code in bits 8–15, signal in bits 0–6.
    public var exitStatus: Int64?
    /// The terminating signal, when Slurm reports it separately (23.02+).
    public var signal: Int64?

    /// A job from one element of `squeue --json`'s `jobs` (or `sacct --json`'s).
    public init(json: JSONValue, defaultCluster: String? = nil) throws(SlurmOutputError) {
        guard let id = json["job_id"]?.slurmInteger else { throw SlurmOutputError("squeue --json", "a job without job_id") }
        self.id = id
        cluster = json["cluster"]?.slurmText ?? defaultCluster ?? ""
        user = json["user_name"]?.slurmText ?? json["user"]?.slurmText ?? json["user_id"]?.slurmInteger.map(String.init) ?? ""
        group = json["group_name"]?.slurmText ?? json["group"]?.slurmText
        account = json["account"]?.slurmText
        partition = json["partition"]?.slurmText
        name = json["name"]?.slurmText
        let hostlist = json["nodes"]?.slurmText ?? json["job_resources"]?["nodes"]?.slurmText ?? ""
        do { nodes = hostlist.isEmpty ? [] : try NodeList(hostlist).expanded() } catch {
            throw SlurmOutputError("squeue --json", "job \(id): \(error)")
        }
        cpus = json["cpus"]?.slurmInteger
        walltime = json["time_limit"]?.slurmInteger.map { $0 * 60 }
        let time = json["time"]  // sacct keeps times under "time"
        submitTime = json["submit_time"]?.slurmInteger ?? time?["submission"]?.slurmInteger
        startTime = json["start_time"]?.slurmInteger ?? time?["start"]?.slurmInteger
        endTime = json["end_time"]?.slurmInteger ?? time?["end"]?.slurmInteger
        state = json["job_state"]?.slurmWords ?? json["state"]?["current"]?.slurmWords ?? []
        reason = json["state_reason"]?.slurmText ?? json["state"]?["reason"]?.slurmText
        switch json["exit_code"] {
        case .integer(let raw)?: exitStatus = raw
        case let object?:
            exitStatus = object["return_code"]?.slurmInteger.map { $0 << 8 }
            signal = object["signal"]?["id"]?.slurmInteger ?? object["signal"]?["signal_id"]?.slurmInteger
        case nil: break
        }
        if startTime == 0 { startTime = nil }
        if endTime == 0 { endTime = nil }
    }

    /// Whether the job ever ran on nodes (a job cancelled while pending did not).
    public var ran: Bool { !nodes.isEmpty && startTime != nil && !state.contains("PENDING") }

    /// Whether Slurm has settled the end state: false while it shows the job only as
    /// COMPLETING (Slurm 22.05 does until EpilogSlurmctld exits; a cancelled job's exit
    /// status is then still racing in, so ``endState`` is a guess).
    public var endStateIsFinal: Bool {
        let words = Set(state)
        return !words.contains("COMPLETING") || !words.isDisjoint(with: Self.endWords.map(\.0))
    }

    private static let endWords: [(String, String)] = [
        ("TIMEOUT", "timeout"), ("OUT_OF_MEMORY", "out_of_memory"), ("NODE_FAIL", "node_fail"), ("BOOT_FAIL", "boot_fail"),
        ("DEADLINE", "deadline"), ("PREEMPTED", "preempted"), ("CANCELLED", "cancelled"), ("FAILED", "failed"), ("COMPLETED", "completed"),
    ]

    /// ClusterCockpit's end state, or nil while the job has not ended. In
    /// EpilogSlurmctld Slurm still reports COMPLETING; the end state is then read from the
    /// reason (TimeLimit → timeout, ...) and the wait status (a signal → cancelled, a
    /// non-zero exit → failed), as Slurm itself decides it.
    public var endState: String? {
        let words = Set(state)
        if let hit = Self.endWords.first(where: { words.contains($0.0) }) { return hit.1 }
        guard words.contains("COMPLETING") else { return nil }
        switch reason {
        case "TimeLimit": return "timeout"
        case "OutOfMemory": return "out_of_memory"
        case "NodeDown", "NodeFail": return "node_fail"
        case "BootFail": return "boot_fail"
        case "DeadLine", "Deadline": return "deadline"
        default: break
        }
        let raw = exitStatus ?? 0
        if (signal ?? 0) != 0 || raw & 0x7f != 0 { return "cancelled" }
        return (raw >> 8) & 0xff != 0 ? "failed" : "completed"
    }

    /// The project: Slurm's account, or the job's Unix group where Slurm keeps no accounts
    /// (no accounting storage: "(null)").
    public var project: String { account ?? group ?? "" }

    /// ClusterCockpit's start_job payload.
    public func startEvent() throws(SlurmOutputError) -> JSONValue {
        guard let startTime, !nodes.isEmpty else { throw SlurmOutputError("squeue --json", "job \(id) has not started") }
        var b = JSONObjectBuilder()
        b.add("jobId", id)
        b.add("user", user)
        b.add("project", project)
        b.add("cluster", cluster)
        b.add("partition", partition ?? "")
        b.add("numNodes", Int64(nodes.count))
        if let cpus { b.add("numHwthreads", cpus) }
        if let walltime { b.add("walltime", walltime) }
        b.add("resources", .array(nodes.map { .object([("hostname", .string($0))]) }))
        if let name { b.add("metaData", .object([("jobName", .string(name))])) }
        if let submitTime { b.add("submitTime", submitTime) }
        b.add("startTime", startTime)
        return b.value
    }

    /// ClusterCockpit's stop_job payload.
    public func stopEvent() throws(SlurmOutputError) -> JSONValue {
        guard let state = endState, let startTime else { throw SlurmOutputError("squeue --json", "job \(id) has not ended") }
        var b = JSONObjectBuilder()
        b.add("jobId", id)
        b.add("cluster", cluster)
        b.add("startTime", startTime)
        b.add("jobState", state)
        b.add("stopTime", max(endTime ?? startTime, startTime))
        return b.value
    }

    /// Every job of `squeue --json -t all` (or `sacct --json`) output.
    public static func list(_ output: [UInt8], defaultCluster: String? = nil) throws(SlurmOutputError) -> [SlurmJob] {
        let json: JSONValue
        do { json = try JSONValue.parse(output) } catch { throw SlurmOutputError("squeue --json", "not JSON: \(error)") }
        guard case .array(let jobs)? = json["jobs"] else { throw SlurmOutputError("squeue --json", "no \"jobs\" array") }
        var result: [SlurmJob] = []
        for job in jobs { result.append(try SlurmJob(json: job, defaultCluster: defaultCluster)) }
        return result
    }
}
