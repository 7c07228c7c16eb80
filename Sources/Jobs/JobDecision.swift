import Model

/// What the job tables hold about a start event's identity: the input of ``JobDecision/start(_:known:clusters:duplicateWindow:)``.
public struct StartContext: Sendable {
    /// The stored job of the same job id, cluster and start time, with its canonical start event.
    public var sameIdentity: (id: Int64, startEvent: String)?
    /// The newest stored start time of the same job id and cluster within the duplicate window.
    public var recentStartTime: Int64?
    /// The oldest stop held for this job (arrived before its start), with its row id.
    public var heldStop: (id: Int64, stop: JobStop)?

    /// A context.
    public init(sameIdentity: (id: Int64, startEvent: String)? = nil, recentStartTime: Int64? = nil, heldStop: (id: Int64, stop: JobStop)? = nil) {
        self.sameIdentity = sameIdentity
        self.recentStartTime = recentStartTime
        self.heldStop = heldStop
    }
}

/// The job a stop event is for, as stored: the input of ``JobDecision/stop(_:target:heldAlready:)``.
public struct StopTarget: Sendable, Equatable {
    /// The job.
    public var record: JobRecord
    /// The canonical stop event that stopped it, when one did.
    public var stopEvent: String?

    /// A target.
    public init(record: JobRecord, stopEvent: String?) {
        self.record = record
        self.stopEvent = stopEvent
    }
}

/// What to write for a start.
public enum StartDecision: Sendable, Equatable {
    /// The identical start was applied before: nothing to write.
    case alreadyStarted(id: Int64)
    /// Insert the job in `subCluster` with its canonical start event; when a held stop was
    /// waiting, delete its row and stop the job as `thenStop` says.
    case insert(subCluster: String, startEvent: String, heldStop: Int64?, thenStop: StopDecision?)
}

/// What to write for a stop.
public enum StopDecision: Sendable, Equatable {
    /// The identical stop was applied before: nothing to write.
    case alreadyStopped(id: Int64)
    /// Set the job's state and duration and keep the canonical stop event; `record` is the
    /// job as it is afterwards (id 0 when the job is inserted by the same decision).
    case stop(JobRecord, stopEvent: String)
    /// No stored job yet: keep the stop until its start comes (`alreadyHeld`: an identical
    /// one waits already, nothing to write).
    case hold(stopEvent: String, alreadyHeld: Bool)
}

/// The job stage's rules as pure functions: cc-backend's start/stop rules plus held stops and
/// idempotent redelivery, from the event and what the tables hold (values in, values out, no
/// I/O, no clock). ``JobStage`` reads the inputs and writes what they decide.
public enum JobDecision {
    /// A time more than a day after the event's arrival at `now` is a wrong clock or a wrong
    /// unit; taken as it is, it would keep a job running (or ended) in the future.
    public static func notInTheFuture(_ name: String, _ time: Int64, now: Int64) throws(JobRejection) {
        guard time > now + JobStart.maxFuture else { return }
        throw .badField(path: name, reason: "\(time) is \((time - now) / 3600) hours after the event arrived (\(now)); at most \(JobStart.maxFuture / 3600) hours ahead are accepted", code: "in_the_future")
    }

    /// Validates a start as cc-backend's SanityChecks do; returns the subcluster to use.
    public static func validate(_ start: JobStart, clusters: ClusterRegistry) throws(JobRejection) -> String {
        guard let cluster = clusters[start.cluster] else {
            let known = clusters.clusters.keys.sorted().joined(separator: ", ")
            throw .unknownCluster("cluster \"\(start.cluster)\" is unknown (known: \(known.isEmpty ? "none" : known)); add <archive>/\(start.cluster)/cluster.json")
        }
        guard let first = start.resources.first else { throw .sanity("resources is empty: a job needs at least one host") }
        guard let sub = cluster.subCluster(named: start.subCluster, forHost: first.hostname) else {
            if !start.subCluster.isEmpty {
                throw .noSubCluster("subCluster \"\(start.subCluster)\" does not exist in cluster \(cluster.name) (has \(cluster.subClusters.map(\.name).joined(separator: ", ")))")
            }
            throw .noSubCluster("host \(first.hostname) is in no subcluster of \(cluster.name) and there is no \"*\" subcluster")
        }
        if start.user.isEmpty { throw .sanity("user is empty") }
        if start.numNodes < 1 { throw .sanity("numNodes is \(start.numNodes), must be at least 1") }
        if start.numAcc < 0 || start.numHwthreads < 0 { throw .sanity("numAcc and numHwthreads must not be negative") }
        if Int64(start.resources.count) != start.numNodes {
            throw .sanity("resources lists \(start.resources.count) hosts but numNodes is \(start.numNodes)")
        }
        return sub.name
    }

    /// The decision for `start`, given what the tables hold about it.
    /// `canonical` is the start's canonical text when the caller has it already (``JobStart/text``).
    public static func start(_ start: JobStart, canonical: String? = nil, known: StartContext, clusters: ClusterRegistry,
                             duplicateWindow: Int64) throws(JobRejection) -> StartDecision {
        let subCluster = try validate(start, clusters: clusters)
        let canonical = canonical ?? start.jsonText()
        // Same identity: a redelivery (identical) or a conflict.
        if let same = known.sameIdentity {
            if same.startEvent == canonical { return .alreadyStarted(id: same.id) }
            throw .conflict("job \(start.jobId) on \(start.cluster) with startTime \(start.startTime) exists with a different start event")
        }
        // cc-backend's duplicate rule, over every stored job.
        if let other = known.recentStartTime {
            throw .duplicateJob("job \(start.jobId) on \(start.cluster) already exists with startTime \(other); a new start needs a startTime at least \(duplicateWindow) s later")
        }
        guard let held = known.heldStop else { return .insert(subCluster: subCluster, startEvent: canonical, heldStop: nil, thenStop: nil) }
        // The stop that arrived first and waited applies to the job as it is just stored.
        let stored = (try? JobStart(json: JSONValue.parse(canonical))) ?? start  // as a later load would read it
        let running = JobRecord(id: 0, start: stored, subCluster: subCluster, state: .running, duration: 0, monitoringStatus: start.monitoringStatus)
        let thenStop = try stop(held.stop, target: StopTarget(record: running, stopEvent: nil), heldAlready: false)
        return .insert(subCluster: subCluster, startEvent: canonical, heldStop: held.id, thenStop: thenStop)
    }

    /// The decision for `stop`, given the job it is for (nil: none stored yet) and whether an
    /// identical stop is held already.
    public static func stop(_ stop: JobStop, target: StopTarget?, heldAlready: Bool) throws(JobRejection) -> StopDecision {
        let canonical = stop.json.jsonText
        guard let target else { return .hold(stopEvent: canonical, alreadyHeld: heldAlready) }
        let record = target.record
        if record.state != .running {
            if target.stopEvent == canonical { return .alreadyStopped(id: record.id) }
            if let stored = target.stopEvent {
                // Stopped by another stop event: the same identity with a different payload.
                throw .conflict("job \(record.start.jobId) on \(record.start.cluster) (startTime \(record.start.startTime)) was stopped by a different stop event: \(stored)")
            }
            throw .notRunning("job \(record.start.jobId) on \(record.start.cluster) (startTime \(record.start.startTime)) has already been stopped (state is: \(record.state.rawValue))")
        }
        if stop.stopTime < record.start.startTime {
            throw .stopBeforeStart("stopTime \(stop.stopTime) is before startTime \(record.start.startTime) of job \(record.start.jobId)")
        }
        let duration = stop.stopTime - record.start.startTime  // both within JobStart.epochSeconds: no overflow
        if duration > JobStart.maxDuration {
            throw .invalidValue("stopTime \(stop.stopTime) is \(duration / 86_400) days after startTime \(record.start.startTime) of job \(record.start.jobId); at most \(JobStart.maxDuration / 86_400) days are accepted")
        }
        var stopped = record
        stopped.state = stop.state
        stopped.duration = duration
        return .stop(stopped, stopEvent: canonical)
    }
}
