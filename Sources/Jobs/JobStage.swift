import Model
import Store

/// What applying one job event did.
public enum JobOutcome: Sendable, Equatable {
    /// A new job was stored (and, when a held stop was waiting for it, `stopped` tells).
    case started(id: Int64, subCluster: String, stopped: JobRecord?)
    /// The identical start was applied before: nothing changed.
    case alreadyStarted(id: Int64)
    /// The job was stopped; archive it when its monitoring status is 1.
    case stopped(JobRecord)
    /// The identical stop was applied before: nothing changed.
    case alreadyStopped(id: Int64)
    /// The stop's job is unknown so far; the stop waits for its start.
    case held

    /// `started`, `duplicate`, `stopped`, `held`: for results and logs.
    public var status: String {
        switch self {
        case .started(_, _, let stopped): stopped == nil ? "started" : "started_and_stopped"
        case .alreadyStarted, .alreadyStopped: "duplicate"
        case .stopped: "stopped"
        case .held: "held"
        }
    }
}

/// The job stage: cc-backend's start/stop rules plus held stops and idempotent redelivery,
/// applied to the job tables of one database connection. Callers wrap each event in a
/// savepoint of the batch transaction; the stage itself does no other I/O.
public final class JobStage {
    let database: Database
    /// The known clusters.
    public var clusters: ClusterRegistry
    /// cc-backend's rule: a start within this many seconds after a stored start of the same
    /// job id on the same cluster is a duplicate.
    public var duplicateWindow: Int64 = 86_400

    /// A stage over `database` (migrated with ``JobSchema/migrations``).
    public init(database: Database, clusters: ClusterRegistry) {
        self.database = database
        self.clusters = clusters
    }

    /// Applies one event received at `now` (epoch seconds); `origin` identifies the message
    /// (stream sequence or message id) and `raw` is the line, both kept with held stops.
    public func apply(_ event: JobEvent, now: Int64, origin: String, raw: String) throws -> JobOutcome {
        switch event {
        case .start(let start):
            try Self.notInTheFuture("startTime", start.startTime, now: now)
            return try apply(start)
        case .stop(let stop):
            try Self.notInTheFuture("stopTime", stop.stopTime, now: now)
            return try apply(stop, now: now, origin: origin, raw: raw)
        }
    }

    /// A time more than a day after the event's arrival is a wrong clock or a wrong unit;
    /// taken as it is, it would keep a job running (or ended) in the future.
    static func notInTheFuture(_ name: String, _ time: Int64, now: Int64) throws(JobRejection) {
        guard time > now + JobStart.maxFuture else { return }
        throw .badField(path: name, reason: "\(time) is \((time - now) / 3600) hours after the event arrived (\(now)); at most \(JobStart.maxFuture / 3600) hours ahead are accepted", code: "in_the_future")
    }

    // MARK: start

    /// Validates a start as cc-backend's SanityChecks do; returns the subcluster to use.
    public func validate(_ start: JobStart) throws(JobRejection) -> String {
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

    func apply(_ start: JobStart) throws -> JobOutcome {
        let subCluster = try validate(start)
        let canonical = start.json().jsonText
        // Same identity: a redelivery (identical) or a conflict.
        if let (id, stored) = try database.prepare("""
            SELECT j.id, e.start_event FROM job j JOIN clusterd_job_event e ON e.job = j.id
            WHERE j.job_id = ? AND j.cluster = ? AND j.start_time = ?
            """).first([.integer(start.jobId), .text(start.cluster), .integer(start.startTime)], { ($0.int(0), $0.text(1)) }) {
            if stored == canonical { return .alreadyStarted(id: id) }
            throw JobRejection.conflict("job \(start.jobId) on \(start.cluster) with startTime \(start.startTime) exists with a different start event")
        }
        // cc-backend's duplicate rule, over every stored job.
        if let other = try database.prepare("""
            SELECT start_time FROM job WHERE job_id = ? AND cluster = ? AND ? - start_time < ? ORDER BY start_time DESC LIMIT 1
            """).first([.integer(start.jobId), .text(start.cluster), .integer(start.startTime), .integer(duplicateWindow)], { $0.int(0) }) {
            throw JobRejection.duplicateJob("job \(start.jobId) on \(start.cluster) already exists with startTime \(other); a new start needs a startTime at least \(duplicateWindow) s later")
        }
        try database.prepare("""
            INSERT INTO job (job_id, cluster, subcluster, submit_time, start_time, hpc_user, project, cluster_partition,
                array_job_id, duration, walltime, job_state, meta_data, resources, num_nodes, num_hwthreads, num_acc, smt,
                shared, monitoring_status, energy, energy_footprint, footprint, requested_memory)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).run([
            .integer(start.jobId), .text(start.cluster), .text(subCluster), .integer(start.submitTime), .integer(start.startTime),
            .text(start.user), .text(start.project), .text(start.partition), .integer(start.arrayJobId), .integer(start.walltime),
            .text(start.metaDataJSON?.jsonText ?? "null"),
            .text(JSONValue.array(start.resources.map(JobStart.resourceJSON)).jsonText),
            .integer(start.numNodes), .integer(start.numHwthreads), .integer(start.numAcc), .integer(start.smt),
            .text(start.shared.rawValue), .integer(start.monitoringStatus), .real(start.energy),
            start.energyFootprintJSON.map { .text($0.jsonText) } ?? .null,
            .text(start.footprintJSON?.jsonText ?? "null"),
            .integer(start.requestedMemory),
        ])
        let id = database.lastInsertRowID
        try database.prepare("INSERT INTO clusterd_job_event (job, start_event) VALUES (?, ?)").run([.integer(id), .text(canonical)])
        for tag in start.tags {
            try database.prepare("INSERT INTO tag (tag_type, tag_name, tag_scope) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .run([.text(tag.type), .text(tag.name), .text(tag.scope)])
            try database.prepare("""
                INSERT OR IGNORE INTO jobtag (job_id, tag_id) SELECT ?, id FROM tag WHERE tag_type = ? AND tag_name = ?
                """).run([.integer(id), .text(tag.type), .text(tag.name)])
        }
        // A stop that arrived first and waited for this start.
        let held = try database.prepare("""
            SELECT id, event FROM clusterd_held_stop
            WHERE job_id = ? AND (cluster IS NULL OR cluster = ?) AND (start_time IS NULL OR start_time = ?)
            ORDER BY id LIMIT 1
            """).first([.integer(start.jobId), .text(start.cluster), .integer(start.startTime)]) { ($0.int(0), $0.text(1)) }
        var stopped: JobRecord?
        if let (heldID, event) = held {
            try database.prepare("DELETE FROM clusterd_held_stop WHERE id = ?").run([.integer(heldID)])
            let stop = try JobStop(json: JSONValue.parse(event))
            if case .stopped(let record) = try stopJob(id: id, stop) { stopped = record }
        }
        return .started(id: id, subCluster: subCluster, stopped: stopped)
    }

    // MARK: stop

    func apply(_ stop: JobStop, now: Int64, origin: String, raw: String) throws -> JobOutcome {
        var sql = "SELECT id FROM job WHERE job_id = ?"
        var args: [SQLValue] = [.integer(stop.jobId)]
        if let c = stop.cluster { sql += " AND cluster = ?"; args.append(.text(c)) }
        if let s = stop.startTime { sql += " AND start_time = ?"; args.append(.integer(s)) }
        sql += " ORDER BY start_time DESC, id DESC LIMIT 1"
        var found = try database.prepare(sql).first(args, { $0.int(0) })
        if found == nil, stop.startTime != nil {
            // A stop naming a start time no stored run has (the scheduler's idea of the start
            // moved between prolog and epilog): the running job of that id is the one meant —
            // a requeued job's earlier run is not running any more.
            var running = "SELECT id FROM job WHERE job_id = ? AND job_state = 'running'"
            var runningArgs: [SQLValue] = [.integer(stop.jobId)]
            if let c = stop.cluster { running += " AND cluster = ?"; runningArgs.append(.text(c)) }
            found = try database.prepare(running + " ORDER BY start_time DESC, id DESC LIMIT 1").first(runningArgs, { $0.int(0) })
            // ... or the job this very stop ended already (a repeat is recognised, not held).
            found = try found ?? database.prepare("""
                SELECT j.id FROM job j JOIN clusterd_job_event e ON e.job = j.id WHERE j.job_id = ? AND e.stop_event = ?
                """).first([.integer(stop.jobId), .text(stop.json.jsonText)], { $0.int(0) })
        }
        guard let id = found else {
            let canonical = stop.json.jsonText
            let already = try database.prepare("SELECT 1 FROM clusterd_held_stop WHERE job_id = ? AND event = ?")
                .first([.integer(stop.jobId), .text(canonical)]) { _ in true } ?? false
            if !already {
                try database.prepare("""
                    INSERT INTO clusterd_held_stop (job_id, cluster, start_time, event, origin, raw, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """).run([.integer(stop.jobId), stop.cluster.map(SQLValue.text) ?? .null, stop.startTime.map(SQLValue.integer) ?? .null,
                              .text(canonical), .text(origin), .text(raw), .integer(now)])
            }
            return .held
        }
        return try stopJob(id: id, stop)
    }

    func stopJob(id: Int64, _ stop: JobStop) throws -> JobOutcome {
        let record = try load(id: id)
        let canonical = stop.json.jsonText
        if record.state != .running {
            let stored = try database.prepare("SELECT stop_event FROM clusterd_job_event WHERE job = ?").first([.integer(id)]) { $0.optionalText(0) } ?? nil
            if stored == canonical { return .alreadyStopped(id: id) }
            if let stored {
                // Stopped by another stop event: the same identity with a different payload.
                throw JobRejection.conflict("job \(record.start.jobId) on \(record.start.cluster) (startTime \(record.start.startTime)) was stopped by a different stop event: \(stored)")
            }
            throw JobRejection.notRunning("job \(record.start.jobId) on \(record.start.cluster) (startTime \(record.start.startTime)) has already been stopped (state is: \(record.state.rawValue))")
        }
        if stop.stopTime < record.start.startTime {
            throw JobRejection.stopBeforeStart("stopTime \(stop.stopTime) is before startTime \(record.start.startTime) of job \(record.start.jobId)")
        }
        let duration = stop.stopTime - record.start.startTime  // both within JobStart.epochSeconds: no overflow
        if duration > JobStart.maxDuration {
            throw JobRejection.invalidValue("stopTime \(stop.stopTime) is \(duration / 86_400) days after startTime \(record.start.startTime) of job \(record.start.jobId); at most \(JobStart.maxDuration / 86_400) days are accepted")
        }
        try database.prepare("UPDATE job SET job_state = ?, duration = ? WHERE id = ?").run([.text(stop.state.rawValue), .integer(duration), .integer(id)])
        try database.prepare("UPDATE clusterd_job_event SET stop_event = ? WHERE job = ?").run([.text(canonical), .integer(id)])
        var stopped = record
        stopped.state = stop.state
        stopped.duration = duration
        return .stopped(stopped)
    }

    // MARK: records

    /// The job with database id `id`.
    public func load(id: Int64) throws -> JobRecord {
        guard let row = try database.prepare("""
            SELECT j.subcluster, j.job_state, j.duration, j.monitoring_status, e.start_event
            FROM job j JOIN clusterd_job_event e ON e.job = j.id WHERE j.id = ?
            """).first([.integer(id)], { ($0.text(0), $0.text(1), $0.int(2), $0.int(3), $0.text(4)) }) else {
            throw StoreError(code: 12, message: "job \(id) not found", context: "load job")
        }
        return JobRecord(id: id, start: try JobStart(json: JSONValue.parse(row.4)), subCluster: row.0,
                         state: JobState(rawValue: row.1) ?? .failed, duration: row.2, monitoringStatus: row.3)
    }

    /// Stopped jobs still waiting for their archive entry (monitoring status 1), oldest first.
    public func pendingArchive(limit: Int = 1000, now: Int64) throws -> [JobRecord] {
        let ids = try database.prepare("""
            SELECT id FROM job WHERE job_state <> 'running' AND (monitoring_status = 1 OR (monitoring_status = 2 AND
                NOT EXISTS (SELECT 1 FROM clusterd_archive_retry r WHERE r.job = job.id AND r.next_at > ?)))
            ORDER BY id LIMIT ?
            """).rows([.integer(now), .integer(Int64(limit))]) { $0.int(0) }
        return try ids.map { try load(id: $0) }
    }

    /// Records that writing job `id`'s archive entry failed at `now`: status 2, retried after
    /// a delay that doubles with each attempt (30 s up to an hour).
    public func archiveFailed(id: Int64, error: String, now: Int64) throws {
        try setMonitoringStatus(id: id, 2)
        try database.prepare("""
            INSERT INTO clusterd_archive_retry (job, attempts, next_at, last_error) VALUES (?, 1, ? + 30, ?)
            ON CONFLICT (job) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error,
                next_at = ? + min(3600, 30 << min(attempts, 7))
            """).run([.integer(id), .integer(now), .text(error), .integer(now)])
    }

    /// Job `id`'s archive entry is written: status 3, nothing left to retry.
    public func archived(id: Int64) throws {
        try setMonitoringStatus(id: id, 3)
        try database.prepare("DELETE FROM clusterd_archive_retry WHERE job = ?").run([.integer(id)])
    }

    /// Archive entries failing now: how many, and the latest error.
    public func archiveFailures() throws -> (count: Int, lastError: String?) { try Self.archiveFailures(in: database) }

    /// The same, read on any connection of the database (a reader for /readyz and /metrics).
    public static func archiveFailures(in database: Database) throws -> (count: Int, lastError: String?) {
        try database.prepare("SELECT count(*), (SELECT last_error FROM clusterd_archive_retry ORDER BY rowid DESC LIMIT 1) FROM clusterd_archive_retry")
            .first { (Int($0.int(0)), $0.optionalText(1)) } ?? (0, nil)
    }

    /// Jobs that ended at or after `since` (epoch seconds), oldest first: black-hole detection
    /// rebuilds its window from them after a restart.
    public func ended(since: Int64) throws -> [JobRecord] {
        let ids = try database.prepare("""
            SELECT id FROM job WHERE job_state <> 'running' AND start_time + duration >= ? ORDER BY start_time + duration
            """).rows([.integer(since)]) { $0.int(0) }
        return try ids.map { try load(id: $0) }
    }

    /// Protects (or unprotects) the newest job matching `jobId`, `cluster` and optionally
    /// `startTime`; returns its database id, nil when there is no such job.
    public func protect(jobId: Int64, cluster: String, startTime: Int64?, protected: Bool, by: String, reason: String, now: Int64) throws -> Int64? {
        var sql = "SELECT id FROM job WHERE job_id = ? AND cluster = ?"
        var values: [SQLValue] = [.integer(jobId), .text(cluster)]
        if let startTime { sql += " AND start_time = ?"; values.append(.integer(startTime)) }
        guard let id = try database.prepare(sql + " ORDER BY id DESC LIMIT 1").first(values, { $0.int(0) }) else { return nil }
        if protected {
            try database.prepare("""
                INSERT INTO clusterd_job_protection (job, protected_by, reason, protected_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (job) DO UPDATE SET protected_by = excluded.protected_by, reason = excluded.reason, protected_at = excluded.protected_at
                """).run([.integer(id), .text(by), .text(reason), .integer(now)])
        } else {
            try database.prepare("DELETE FROM clusterd_job_protection WHERE job = ?").run([.integer(id)])
        }
        return id
    }

    /// Finished, unprotected jobs that ended before `cutoff` (epoch s), oldest first.
    public func expired(before cutoff: Int64, limit: Int = 500) throws -> [JobRecord] {
        let ids = try database.prepare("""
            SELECT id FROM job WHERE job_state <> 'running' AND start_time + duration < ?
              AND id NOT IN (SELECT job FROM clusterd_job_protection) ORDER BY start_time + duration LIMIT ?
            """).rows([.integer(cutoff), .integer(Int64(limit))]) { $0.int(0) }
        return try ids.map { try load(id: $0) }
    }

    /// Deletes a job and what hangs on it (tags, events, protection).
    public func delete(id: Int64) throws {
        try database.prepare("DELETE FROM jobtag WHERE job_id = ?").run([.integer(id)])
        try database.prepare("DELETE FROM clusterd_job_event WHERE job = ?").run([.integer(id)])
        try database.prepare("DELETE FROM job WHERE id = ?").run([.integer(id)])
    }

    /// Records the archive result: 3 written, 2 failed.
    public func setMonitoringStatus(id: Int64, _ status: Int64) throws {
        try database.prepare("UPDATE job SET monitoring_status = ? WHERE id = ?").run([.integer(status), .integer(id)])
    }

    /// Removes held stops received before `cutoff` and returns them (stop event, origin,
    /// raw line) so they can be dead-lettered.
    public func expireHeldStops(before cutoff: Int64) throws -> [(stop: String, origin: String, raw: String, receivedAt: Int64)] {
        let rows = try database.prepare("SELECT event, origin, raw, received_at FROM clusterd_held_stop WHERE received_at < ? ORDER BY id")
            .rows([.integer(cutoff)]) { ($0.text(0), $0.text(1), $0.text(2), $0.int(3)) }
        try database.prepare("DELETE FROM clusterd_held_stop WHERE received_at < ?").run([.integer(cutoff)])
        return rows.map { (stop: $0.0, origin: $0.1, raw: $0.2, receivedAt: $0.3) }
    }
}
