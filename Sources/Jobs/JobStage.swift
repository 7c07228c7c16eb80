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

/// The job stage's table code: reads what ``JobDecision`` needs from the job tables of one
/// database connection and writes what it decides. Callers wrap each event in a savepoint of
/// the batch transaction; the stage itself does no other I/O.
public final class JobStage {
    let database: Database
    /// The known clusters.
    public var clusters: ClusterRegistry
    /// cc-backend's rule: a start within this many seconds after a stored start of the same
    /// job id on the same cluster is a duplicate.
    public var duplicateWindow: Int64 = 86_400
    /// Starts this stage stored, by job row, with their canonical JSON: their stop finds the
    /// start here instead of parsing the stored JSON again (a start reads back as it was
    /// stored: `JobStartRoundTripTests`). Used only when the stored text is the same (a
    /// rolled-back insert's row id can be reused); oldest first out past `recentStartBytes`.
    private var recentStarts: [Int64: (start: JobStart, canonical: String)] = [:]
    private var recentOrder: [Int64] = [], recentHead = 0, recentBytes = 0
    /// Bytes of canonical start JSON the stage keeps in memory at most.
    public var recentStartBytes = 64 << 20

    /// A stage over `database` (migrated with ``JobSchema/migrations``).
    public init(database: Database, clusters: ClusterRegistry) {
        self.database = database
        self.clusters = clusters
    }

    /// Applies one event received at `now` (epoch seconds); `origin` identifies the message
    /// (stream sequence or message id) and `raw` is the line, both kept with held stops.
    /// Reads what the tables hold, lets ``JobDecision`` decide, writes what it decided.
    /// `startText` is a start's ``JobStart/text`` when it was made ahead (off the writer).
    public func apply(_ event: JobEvent, now: Int64, origin: String, raw: String, startText: JobStart.Text? = nil) throws -> JobOutcome {
        switch event {
        case .start(let start):
            try JobDecision.notInTheFuture("startTime", start.startTime, now: now)
            let text = startText ?? start.text
            return try write(JobDecision.start(start, canonical: text.canonical, known: try context(of: start), clusters: clusters,
                                               duplicateWindow: duplicateWindow), start, text)
        case .stop(let stop):
            try JobDecision.notInTheFuture("stopTime", stop.stopTime, now: now)
            let target = try target(of: stop)
            let held = try target == nil && isHeld(stop)
            return try write(JobDecision.stop(stop, target: target, heldAlready: held), stop, now: now, origin: origin, raw: raw)
        }
    }

    /// Validates a start as cc-backend's SanityChecks do; returns the subcluster to use.
    public func validate(_ start: JobStart) throws(JobRejection) -> String {
        try JobDecision.validate(start, clusters: clusters)
    }

    // MARK: start

    /// What the tables hold about `start`'s identity.
    func context(of start: JobStart) throws -> StartContext {
        var known = StartContext()
        known.sameIdentity = try database.prepare(static: """
            SELECT j.id, e.start_event FROM job j JOIN clusterd_job_event e ON e.job = j.id
            WHERE j.job_id = ? AND j.cluster = ? AND j.start_time = ?
            """).first([.integer(start.jobId), .text(start.cluster), .integer(start.startTime)], { (id: $0.int(0), startEvent: $0.text(1)) })
        if known.sameIdentity != nil { return known }
        known.recentStartTime = try database.prepare(static: """
            SELECT start_time FROM job WHERE job_id = ? AND cluster = ? AND ? - start_time < ? ORDER BY start_time DESC LIMIT 1
            """).first([.integer(start.jobId), .text(start.cluster), .integer(start.startTime), .integer(duplicateWindow)], { $0.int(0) })
        if known.recentStartTime != nil { return known }
        if let (id, event) = try database.prepare(static: """
            SELECT id, event FROM clusterd_held_stop
            WHERE job_id = ? AND (cluster IS NULL OR cluster = ?) AND (start_time IS NULL OR start_time = ?)
            ORDER BY id LIMIT 1
            """).first([.integer(start.jobId), .text(start.cluster), .integer(start.startTime)], { ($0.int(0), $0.text(1)) }) {
            known.heldStop = (id, try JobStop(json: JSONValue.parse(event)))
        }
        return known
    }

    func write(_ decision: StartDecision, _ start: JobStart, _ text: JobStart.Text) throws -> JobOutcome {
        let (subCluster, canonical, heldStop, thenStop): (String, String, Int64?, StopDecision?)
        switch decision {
        case .alreadyStarted(let id): return .alreadyStarted(id: id)
        case .insert(let s, let c, let h, let t): (subCluster, canonical, heldStop, thenStop) = (s, c, h, t)
        }
        try database.prepare(static: """
            INSERT INTO job (job_id, cluster, subcluster, submit_time, start_time, hpc_user, project, cluster_partition,
                array_job_id, duration, walltime, job_state, meta_data, resources, num_nodes, num_hwthreads, num_acc, smt,
                shared, monitoring_status, energy, energy_footprint, footprint, requested_memory)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).run([
            .integer(start.jobId), .text(start.cluster), .text(subCluster), .integer(start.submitTime), .integer(start.startTime),
            .text(start.user), .text(start.project), .text(start.partition), .integer(start.arrayJobId), .integer(start.walltime),
            .text(text.metaData ?? "null"),
            .text(text.resources),
            .integer(start.numNodes), .integer(start.numHwthreads), .integer(start.numAcc), .integer(start.smt),
            .text(start.shared.rawValue), .integer(start.monitoringStatus), .real(start.energy),
            start.energyFootprint.map { .text(JobStart.sortedText($0)) } ?? .null,
            .text(start.footprint.map(JobStart.sortedText) ?? "null"),
            .integer(start.requestedMemory),
        ])
        let id = database.lastInsertRowID
        try database.prepare(static: "INSERT INTO clusterd_job_event (job, start_event) VALUES (?, ?)").run([.integer(id), .text(canonical)])
        remember(start, canonical: canonical, id: id)
        for tag in start.tags {
            try database.prepare(static: "INSERT INTO tag (tag_type, tag_name, tag_scope) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .run([.text(tag.type), .text(tag.name), .text(tag.scope)])
            try database.prepare(static: """
                INSERT OR IGNORE INTO jobtag (job_id, tag_id) SELECT ?, id FROM tag WHERE tag_type = ? AND tag_name = ?
                """).run([.integer(id), .text(tag.type), .text(tag.name)])
        }
        var stopped: JobRecord?
        if let heldStop {
            try database.prepare(static: "DELETE FROM clusterd_held_stop WHERE id = ?").run([.integer(heldStop)])
            if case .stop(var record, let stopEvent)? = thenStop {
                record.id = id
                try writeStop(record, stopEvent: stopEvent)
                stopped = record
            }
        }
        return .started(id: id, subCluster: subCluster, stopped: stopped)
    }

    // MARK: stop

    /// The stored job `stop` is for, nil when there is none yet.
    func target(of stop: JobStop) throws -> StopTarget? {
        // One statement per shape the stop narrows by (cached: no SQL text built per stop).
        let statement = switch (stop.cluster != nil, stop.startTime != nil) {
        case (false, false): try database.prepare(static: "SELECT id FROM job WHERE job_id = ? ORDER BY start_time DESC, id DESC LIMIT 1")
        case (true, false): try database.prepare(static: "SELECT id FROM job WHERE job_id = ? AND cluster = ? ORDER BY start_time DESC, id DESC LIMIT 1")
        case (false, true): try database.prepare(static: "SELECT id FROM job WHERE job_id = ? AND start_time = ? ORDER BY start_time DESC, id DESC LIMIT 1")
        case (true, true):
            try database.prepare(static: "SELECT id FROM job WHERE job_id = ? AND cluster = ? AND start_time = ? ORDER BY start_time DESC, id DESC LIMIT 1")
        }
        var args: [SQLValue] = [.integer(stop.jobId)]
        if let c = stop.cluster { args.append(.text(c)) }
        if let s = stop.startTime { args.append(.integer(s)) }
        var found = try statement.first(args, { $0.int(0) })
        if found == nil, stop.startTime != nil {
            // A stop naming a start time no stored run has (the scheduler's idea of the start
            // moved between prolog and epilog): the running job of that id is the one meant —
            // a requeued job's earlier run is not running any more.
            var running = "SELECT id FROM job WHERE job_id = ? AND job_state = 'running'"
            var runningArgs: [SQLValue] = [.integer(stop.jobId)]
            if let c = stop.cluster { running += " AND cluster = ?"; runningArgs.append(.text(c)) }
            found = try database.prepare(running + " ORDER BY start_time DESC, id DESC LIMIT 1").first(runningArgs, { $0.int(0) })
            // ... or the job this very stop ended already (a repeat is recognised, not held).
            found = try found ?? database.prepare(static: """
                SELECT j.id FROM job j JOIN clusterd_job_event e ON e.job = j.id WHERE j.job_id = ? AND e.stop_event = ?
                """).first([.integer(stop.jobId), .text(stop.json.jsonText)], { $0.int(0) })
        }
        return try found.map(loadWithStopEvent(id:))
    }

    /// An identical stop waits for its start already.
    func isHeld(_ stop: JobStop) throws -> Bool {
        try database.prepare(static: "SELECT 1 FROM clusterd_held_stop WHERE job_id = ? AND event = ?")
            .first([.integer(stop.jobId), .text(stop.json.jsonText)]) { _ in true } ?? false
    }

    func write(_ decision: StopDecision, _ stop: JobStop, now: Int64, origin: String, raw: String) throws -> JobOutcome {
        switch decision {
        case .alreadyStopped(let id):
            return .alreadyStopped(id: id)
        case .stop(let record, let stopEvent):
            try writeStop(record, stopEvent: stopEvent)
            return .stopped(record)
        case .hold(let stopEvent, let alreadyHeld):
            if !alreadyHeld {
                try database.prepare(static: """
                    INSERT INTO clusterd_held_stop (job_id, cluster, start_time, event, origin, raw, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """).run([.integer(stop.jobId), stop.cluster.map(SQLValue.text) ?? .null, stop.startTime.map(SQLValue.integer) ?? .null,
                              .text(stopEvent), .text(origin), .text(raw), .integer(now)])
            }
            return .held
        }
    }

    func writeStop(_ record: JobRecord, stopEvent: String) throws {
        try database.prepare(static: "UPDATE job SET job_state = ?, duration = ? WHERE id = ?").run([.text(record.state.rawValue), .integer(record.duration), .integer(record.id)])
        try database.prepare(static: "UPDATE clusterd_job_event SET stop_event = ? WHERE job = ?").run([.text(stopEvent), .integer(record.id)])
        forget(record.id)
    }

    private func remember(_ start: JobStart, canonical: String, id: Int64) {
        guard canonical.utf8.count <= recentStartBytes / 16 else { return }
        if let old = recentStarts.updateValue((start, canonical), forKey: id) { recentBytes -= old.canonical.utf8.count }
        recentBytes += canonical.utf8.count
        recentOrder.append(id)
        while recentBytes > recentStartBytes, recentHead < recentOrder.count {
            forget(recentOrder[recentHead])
            recentHead += 1
        }
        if recentHead > 4096 && recentHead * 2 > recentOrder.count {
            recentOrder.removeFirst(recentHead)
            recentHead = 0
        }
    }

    private func forget(_ id: Int64) {
        if let old = recentStarts.removeValue(forKey: id) { recentBytes -= old.canonical.utf8.count }
    }

    // MARK: records

    /// The job with database id `id`.
    public func load(id: Int64) throws -> JobRecord { try loadWithStopEvent(id: id).record }

    /// The job with database id `id` and the stop event that stopped it, if one did.
    func loadWithStopEvent(id: Int64) throws -> StopTarget {
        guard let row = try database.prepare(static: """
            SELECT j.subcluster, j.job_state, j.duration, j.monitoring_status, e.start_event, e.stop_event
            FROM job j JOIN clusterd_job_event e ON e.job = j.id WHERE j.id = ?
            """).first([.integer(id)], { ($0.text(0), $0.text(1), $0.int(2), $0.int(3), $0.text(4), $0.optionalText(5)) }) else {
            throw StoreError(code: 12, message: "job \(id) not found", context: "load job")
        }
        let start: JobStart
        if let recent = recentStarts[id], recent.canonical == row.4 { start = recent.start } else { start = try JobStart(json: JSONValue.parse(row.4)) }
        let record = JobRecord(id: id, start: start, subCluster: row.0,
                               state: JobState(rawValue: row.1) ?? .failed, duration: row.2, monitoringStatus: row.3)
        return StopTarget(record: record, stopEvent: row.5)
    }

    /// Stopped jobs still waiting for their archive entry (monitoring status 1), oldest first.
    public func pendingArchive(limit: Int = 1000, now: Int64) throws -> [JobRecord] {
        // Two scans of partial indexes (an OR of both conditions reads the whole table).
        let ids = try database.prepare("""
            SELECT id FROM (
                SELECT id FROM job WHERE monitoring_status = 1 AND job_state <> 'running'
                UNION ALL
                SELECT id FROM job WHERE monitoring_status = 2 AND job_state <> 'running'
                    AND NOT EXISTS (SELECT 1 FROM clusterd_archive_retry r WHERE r.job = job.id AND r.next_at > ?))
            ORDER BY id LIMIT ?
            """).rows([.integer(now), .integer(Int64(limit))]) { $0.int(0) }
        return try ids.map { try load(id: $0) }
    }

    /// Of `ids`, those still waiting for their archive entry (status 1), in one query.
    public func stillPending(_ ids: [Int64]) throws -> Set<Int64> {
        let list = "[" + ids.map(String.init).joined(separator: ",") + "]"
        return Set(try database.prepare(static: "SELECT id FROM job WHERE monitoring_status = 1 AND id IN (SELECT value FROM json_each(?))")
            .rows([.text(list)]) { $0.int(0) })
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
        try database.prepare(static: "DELETE FROM clusterd_archive_retry WHERE job = ?").run([.integer(id)])
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
        guard let id = try protection(jobId: jobId, cluster: cluster, startTime: startTime)?.id else { return nil }
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

    /// The job `jobId` on `cluster` (the latest, or the one started at `startTime`) and its
    /// protection as it stands (`by` nil: not protected); nil when there is no such job.
    public func protection(jobId: Int64, cluster: String, startTime: Int64?) throws -> (id: Int64, by: String?, reason: String, at: Int64)? {
        var sql = """
            SELECT j.id, p.protected_by, p.reason, p.protected_at FROM job j LEFT JOIN clusterd_job_protection p ON p.job = j.id
            WHERE j.job_id = ? AND j.cluster = ?
            """
        var values: [SQLValue] = [.integer(jobId), .text(cluster)]
        if let startTime { sql += " AND j.start_time = ?"; values.append(.integer(startTime)) }
        return try database.prepare(sql + " ORDER BY j.id DESC LIMIT 1").first(values) { r in
            (r.int(0), r.isNull(1) ? nil : r.text(1), r.isNull(2) ? "" : r.text(2), r.isNull(3) ? 0 : r.int(3))
        }
    }

    /// Finished, unprotected jobs that ended before `cutoff` (epoch s), oldest first.
    public func expired(before cutoff: Int64, limit: Int = 500) throws -> [JobRecord] {
        let ids = try database.prepare("""
            SELECT id FROM job WHERE job_state <> 'running' AND start_time + duration < ?
              AND id NOT IN (SELECT job FROM clusterd_job_protection) ORDER BY start_time + duration LIMIT ?
            """).rows([.integer(cutoff), .integer(Int64(limit))]) { $0.int(0) }
        return try ids.map { try load(id: $0) }
    }

    /// Archived, finished jobs the disk budget may evict, oldest start first: never protected
    /// ones, nor those of `keepUsers`, `keepProjects` or tagged with one of `keepTags`.
    public func evictionCandidates(keepUsers: [String], keepProjects: [String], keepTags: [String], offset: Int, limit: Int) throws -> [JobRecord] {
        func list(_ n: Int) -> String { Array(repeating: "?", count: n).joined(separator: ", ") }
        let ids = try database.prepare("""
            SELECT id FROM job WHERE job_state <> 'running' AND monitoring_status = 3
              AND id NOT IN (SELECT job FROM clusterd_job_protection)
              AND hpc_user NOT IN (\(list(keepUsers.count))) AND project NOT IN (\(list(keepProjects.count)))
              AND id NOT IN (SELECT jobtag.job_id FROM jobtag JOIN tag ON tag.id = jobtag.tag_id WHERE tag.tag_name IN (\(list(keepTags.count))))
            ORDER BY start_time, id LIMIT ? OFFSET ?
            """).rows((keepUsers + keepProjects + keepTags).map(SQLValue.text) + [.integer(Int64(limit)), .integer(Int64(offset))]) { $0.int(0) }
        return try ids.map { try load(id: $0) }
    }

    /// Records that `job` is leaving the archive for the disk budget: pending until
    /// ``finishEviction(_:)`` (its files are removed in between). Returns the record's id.
    public func recordEviction(_ job: JobRecord, bytes: Int64, reason: String, by: String, at: Int64) throws -> Int64 {
        try database.prepare("""
            INSERT INTO clusterd_archive_eviction (at, job_id, cluster, start_time, hpc_user, project, bytes, reason, evicted_by, job, state)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')
            """).run([.integer(at), .integer(job.start.jobId), .text(job.start.cluster), .integer(job.start.startTime),
                      .text(job.start.user), .text(job.start.project), .integer(bytes), .text(reason), .text(by), .integer(job.id)])
        return database.lastInsertRowID
    }

    /// Evictions recorded but not finished (a stop came between the record and the rows'
    /// removal): the record's id, the job's row and where its archive directory is.
    public func pendingEvictions() throws -> [(id: Int64, job: Int64, cluster: String, jobId: Int64, startTime: Int64)] {
        try database.prepare("SELECT id, job, cluster, job_id, start_time FROM clusterd_archive_eviction WHERE state = 'pending' ORDER BY id")
            .rows { ($0.int(0), $0.int(1), $0.text(2), $0.int(3), $0.int(4)) }
    }

    /// Removes the job's rows of eviction `id` (its files are gone) and marks it done.
    public func finishEviction(_ id: Int64, job: Int64) throws {
        try delete(id: job)
        try database.prepare("UPDATE clusterd_archive_eviction SET state = 'done' WHERE id = ?").run([.integer(id)])
    }

    /// Deletes a job and what hangs on it (tags, events, protection).
    public func delete(id: Int64) throws {
        try database.prepare("DELETE FROM jobtag WHERE job_id = ?").run([.integer(id)])
        try database.prepare("DELETE FROM clusterd_job_event WHERE job = ?").run([.integer(id)])
        try database.prepare("DELETE FROM job WHERE id = ?").run([.integer(id)])
    }

    /// Records the archive result: 3 written, 2 failed.
    public func setMonitoringStatus(id: Int64, _ status: Int64) throws {
        try database.prepare(static: "UPDATE job SET monitoring_status = ? WHERE id = ?").run([.integer(status), .integer(id)])
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
