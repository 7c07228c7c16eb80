import Archive
import Config
import Foundation
import Gzip
import Intake
import Jobs
import LineProtocol
import Logging
import MetricBuffers
import Model
import Observability
import Store
import Synchronization

/// The job stage's handling of a line: decode the event, apply it in its own savepoint.
final class JobLineHandler: LineHandler {
    let stage = "jobs"
    let jobs: JobStage
    let database: Database
    let counters: PipelineCounters
    let logger: Logger
    var onStopped: @Sendable ([JobRecord]) -> Void = { _ in }
    /// Where a stopped job's archive outcome is published (`<result_prefix>.archive`).
    var archiveSubjectPrefix = "clusterd.result.archive"
    /// The clusters this instance owns (empty: all); a stop naming no cluster is applied.
    var owned: Set<String> = []
    private var stopped: [JobRecord] = []

    init(jobs: JobStage, database: Database, counters: PipelineCounters, logger: Logger) {
        self.jobs = jobs
        self.database = database
        self.counters = counters
        self.logger = logger
    }

    /// A job event line as far as it is made without the tables: decoded, and a start's text.
    struct Decoded: Sendable {
        /// The event and the column to blame, or why the line is no event.
        var event: Result<(event: JobEvent, column: Int), Located<JobRejection>>
        /// A start's canonical text (``JobStart/text``), the one part of applying it that is
        /// pure and costly.
        var startText: JobStart.Text?

        init(_ view: PointView) {
            event = JobEvent.decode(view)
            if case .success((.start(let start), _)) = event { startText = start.text }
        }
    }

    /// Job events are decoded without the database: ahead, off the writer.
    var predecoder: (@Sendable (PointView) -> any Sendable)? { { view in Decoded(view) } }

    func handle(_ view: PointView, message: IncomingMessage, raw: String) throws -> [LineResult] {
        try apply(Decoded(view), line: view.line, message: message, raw: raw)
    }

    func handle(predecoded value: any Sendable, line: Int, message: IncomingMessage, raw: String) throws -> [LineResult] {
        guard let decoded = value as? Decoded else { throw PredecodedValueError(stage: stage, value: value) }
        return try apply(decoded, line: line, message: message, raw: raw)
    }

    /// Applies one decoded line (or refuses it with the decoder's reason).
    private func apply(_ decoded: Decoded, line: Int, message: IncomingMessage, raw: String) throws -> [LineResult] {
        switch decoded.event {
        case .failure(let located):
            return [.rejected(column: located.column, code: located.value.code, reason: located.value.description, entry: nil)]
        case .success(let (event, column)):
            if !owned.isEmpty, let cluster = event.cluster, !owned.contains(cluster) { return [.notOwned] }
            let result: JobOutcome
            do {
                result = try database.event {
                    try jobs.apply(event, now: message.receivedAt, origin: message.origin, raw: raw, startText: decoded.startText)
                }
            } catch let rejection as JobRejection {
                return [.rejected(column: column, code: rejection.code, reason: rejection.description, entry: nil)]
            } catch let error as StoreError where !error.isTransient {
                // A constraint the stage did not foresee: this event can never succeed.
                let rejection = JobRejection.invalidValue("rejected by the database: \(error.message)")
                return [.rejected(column: column, code: rejection.code, reason: rejection.description, entry: nil)]
            }
            var archive: String?
            switch result {
            case .stopped(let record), .started(_, _, let record?):
                stopped.append(record)
                if message.hasResultReceiver { archive = JobProcessor.archiveSubject(archiveSubjectPrefix, record) }
            default: break
            }
            counts.add("jobs.events.\(result.status)")
            logger.debug("job event applied", metadata: ["origin": "\(message.origin)", "line": "\(line)", "job": "\(event.jobId)",
                                                         "status": "\(result.status)"])
            guard message.hasResultReceiver else { return [.accepted(.null)] }
            var b = JSONObjectBuilder()
            b.add("function", event.function)
            b.add("jobId", event.jobId)
            b.add("status", result.status)
            if let archive {
                // The archive entry is written after the commit: its outcome follows on `archive`.
                b.add("archived", false)
                b.add("archive", archive)
            }
            return [.accepted(b.value)]
        }
    }

    func committed() {
        if !stopped.isEmpty { onStopped(stopped) }
        stopped.removeAll()
        counts.commit(to: counters)
    }

    func rolledBack() {
        stopped.removeAll()
        counts.discard()
    }

    private var counts = BatchCounts()
}

/// Applies batches of job-event messages (see ``StageProcessor``) and writes the archive
/// entries of stopped jobs.
public final class JobProcessor: StageProcessor, @unchecked Sendable {
    /// The job stage.
    public let stage: JobStage
    let archive: ArchiveWriter
    let clusters: Reloadable<ClusterRegistry>
    /// Collects a stopped job's metrics from the buffers; nil: meta.json only.
    public var dataBuilder: JobDataBuilder?
    /// Jobs a committed batch stopped that wait for their archive entry, as the batch had
    /// them in memory: archived without being read back and parsed again. (After a restart,
    /// and for retries, the table says what is pending.)
    private let justStopped = Mutex<[JobRecord]>([])
    /// At most this many wait in ``justStopped``: when the archive falls behind the intake
    /// (a slow disk, a burst of stops), the rest wait in the table only — read back from it
    /// once the archive has caught up — so memory stays bounded (a job's record is ~2–3 kB).
    package var rememberedStops = 16_384

    /// A processor over an open, migrated database.
    /// `onStopped` receives the jobs each committed batch stopped (for black-hole detection).
    public init(database: Database, clusters: Reloadable<ClusterRegistry>, archive: ArchiveWriter, config: ClusterdConfig,
                counters: PipelineCounters, logger: Logger, onStopped: @escaping @Sendable ([JobRecord]) -> Void = { _ in }) {
        let stage = JobStage(database: database, clusters: clusters.current)
        self.stage = stage
        self.archive = archive
        self.clusters = clusters
        let handler = JobLineHandler(jobs: stage, database: database, counters: counters, logger: logger)
        handler.archiveSubjectPrefix = "\(config.publish.resultPrefix).archive"
        handler.owned = Set(config.intake.clusters)
        super.init(database: database, handler: handler, config: config, counters: counters, logger: logger)
        beforeBatch = { stage.clusters = clusters.current }
        handler.onStopped = { [weak self] records in
            self?.remember(records.filter { $0.monitoringStatus == 1 })
            onStopped(records)
        }
    }

    /// Queues stopped jobs for the archive, up to ``rememberedStops``; those beyond wait in
    /// the table, and an older copy of one of them already queued is taken out (the table has
    /// its latest state; archived from the queue, the older copy would win).
    private func remember(_ stopped: [JobRecord]) {
        justStopped.withLock { queue in
            let room = max(0, rememberedStops - queue.count)
            queue += stopped.prefix(room)
            guard stopped.count > room else { return }
            let left = Set(stopped.dropFirst(room).map(\.id))
            queue.removeAll { left.contains($0.id) }
        }
    }

    /// All migrations of the tables this processor uses.
    public static let migrations = Outbox.migrations + PipelineSchema.migrations + JobSchema.migrations

    /// Writes the archive entry of every stopped job still waiting for it — meta.json with
    /// statistics and footprint, and data.json (gzip above 2000 bytes, as cc-backend does)
    /// when the metric buffers hold data for it — and records the outcome (monitoring
    /// status 3 and the footprint, or 2 with an error log and a retry after a growing delay,
    /// e.g. once a full disk has room again). Returns how many were written.
    /// One batch after another in this thread; ``ArchiveWorker`` overlaps the two halves.
    @discardableResult
    public func archivePending(now: Int64 = Int64(Date().timeIntervalSince1970)) throws -> Int {
        var written = 0
        while let batch = try stageArchive(now: now) { written += try finishArchive(batch, now: now) }
        return written
    }

    /// Archive entries whose files are written, unsynced (``stageArchive(now:fromTable:)``),
    /// waiting for ``finishArchive(_:now:)`` to make them durable and record them.
    public struct ArchiveBatch: Sendable {
        let staged: ArchiveWriter.Staged
        let footprints: [String?]

        /// Several batches as one, finished with one sync (two when a rewrite is among them).
        public static func joined(_ batches: [ArchiveBatch]) -> ArchiveBatch {
            ArchiveBatch(staged: .joined(batches.map(\.staged)), footprints: batches.flatMap(\.footprints))
        }
    }

    private let stagedBatches = Atomic<UInt64>(0)

    /// The first half of archiving: takes up to 256 jobs waiting for their entry — those
    /// committed batches just stopped, else (when `fromTable`) the table's pending ones —
    /// and writes their files (``ArchiveWriter/stage(_:batch:)``). Nil when none waits. A caller with a
    /// batch still unfinished passes `fromTable: false`: the table still lists that batch's
    /// jobs as pending.
    public func stageArchive(now: Int64, fromTable: Bool = true) throws -> ArchiveBatch? {
        while true {
            // Taken under the writer, which the intake holds while it commits and queues its
            // stops: an empty queue then means the table lists no stop still queued, so a job
            // is never staged twice — from the table and again from the queue (a double
            // entry and announcement, seen in ArchiveWorkerBusTests).
            let pending: [JobRecord]? = try exclusive {
                let known = justStopped.withLock { queue -> [JobRecord] in
                    let taken = Array(queue.prefix(256))
                    queue.removeFirst(taken.count)
                    return taken
                }
                if known.isEmpty { return fromTable ? try stage.pendingArchive(limit: 256, now: now) : [] }
                // Still pending (not removed by retention meanwhile), checked in one query.
                // A job queued twice in a short time is archived once, as queued last.
                let ids = try stage.stillPending(known.map(\.id))
                var last: [Int64: Int] = [:]
                for (i, job) in known.enumerated() { last[job.id] = i }
                let pending = known.enumerated().filter { ids.contains($0.element.id) && last[$0.element.id] == $0.offset }.map(\.element)
                return pending.isEmpty ? nil : pending
            }
            guard let pending else { continue }
            if pending.isEmpty { return nil }
            var footprints: [String?] = []
            let entries = pending.map { job -> ArchiveWriter.Entry in
                var archived = job
                archived.monitoringStatus = 3
                let (entry, footprint) = self.entry(for: archived)
                footprints.append(footprint)
                return entry
            }
            // Files are written without the writer: other stages go on meanwhile.
            return ArchiveBatch(staged: archive.stage(entries, batch: stagedBatches.add(1, ordering: .relaxed).newValue),
                                footprints: footprints)
        }
    }

    /// The second half: syncs `batch`'s files (renaming rewritten ones into place), then records each
    /// job's outcome and queues its announcement. Returns how many were written.
    public func finishArchive(_ batch: ArchiveBatch, now: Int64) throws -> Int {
        let results = archive.commit(batch.staged, now: now)
        // The announcements are made before the writer is taken: its time is the intake's.
        let announcements = zip(batch.staged.entries, results).map { entry, result -> OutboxMessage? in
            switch result {
            case .success: announcement(entry.job, files: entry.files.map(\.name), error: nil)
            case .failure(let error): entry.job.monitoringStatus == 2 ? nil : announcement(entry.job, files: [], error: "\(error); retried")
            }
        }
        var written = 0
        try exclusive { try database.transaction {
            for (i, result) in results.enumerated() {
                let job = batch.staged.entries[i].job
                switch result {
                case .success:
                    try stage.archived(id: job.id)
                    if let footprint = batch.footprints[i] {
                        try database.prepare("UPDATE job SET footprint = ? WHERE id = ?").run([.text(footprint), .integer(job.id)])
                    }
                    written += 1
                case .failure(let error):
                    try stage.archiveFailed(id: job.id, error: "\(error)", now: now)
                    logger.error("archiving failed", metadata: ["job": "\(job.start.jobId)", "cluster": "\(job.start.cluster)", "error": "\(error)"])
                }
                if let message = announcements[i] { try outbox.append(message) }
            }
        } }
        if written > 0 { counters.add("jobs.archived", written) }
        if written < results.count { counters.add("jobs.archive_failed", results.count - written) }
        return written
    }

    /// The archive files of `job` and its footprint JSON (nil without metric data).
    func entry(for job: JobRecord) -> (ArchiveWriter.Entry, String?) {
        let hosts = job.start.resources.map { JobWindow.Host(hostname: $0.hostname, hwthreads: $0.hwthreads, accelerators: $0.accelerators) }
        let window = JobWindow(cluster: job.start.cluster, subCluster: job.subCluster, hosts: hosts, start: job.start.startTime,
                               stop: job.start.startTime + job.duration)
        guard let cluster = clusters.current[job.start.cluster] else {
            return (ArchiveWriter.Entry(job: job, files: [("meta.json", Array((job.metaJSON + "\n").utf8))]), nil)
        }
        guard let builder = dataBuilder, let metrics = builder.build(window, cluster: cluster) else {
            // No samples at all: every metric of the subcluster with zero statistics (the
            // job-meta schema requires them) and no data.json.
            let meta = job.metaJSON(statistics: Self.completed(nil, cluster: cluster, subCluster: job.subCluster), footprint: nil)
            return (ArchiveWriter.Entry(job: job, files: [("meta.json", Array((meta + "\n").utf8))]), nil)
        }
        let meta = job.metaJSON(statistics: Self.completed(metrics.statistics, cluster: cluster, subCluster: job.subCluster), footprint: metrics.footprint)
        var files: [(name: String, bytes: [UInt8])] = [("meta.json", Array((meta + "\n").utf8))]
        let data = Array((metrics.data.jsonText + "\n").utf8)
        if data.count > 2000, let compressed = try? Gzip.compress(data) {
            files.append(("data.json.gz", compressed))
        } else {
            files.append(("data.json", data))
        }
        let footprint = JSONValue.object(metrics.footprint.sorted { $0.key < $1.key }.map { ($0.key, .double($0.value)) }).jsonText
        return (ArchiveWriter.Entry(job: job, files: files), metrics.footprint.isEmpty ? nil : footprint)
    }

    /// The subject a job's archive outcome is published on: `<prefix>.<cluster>.<jobId>.<startTime>`.
    static func archiveSubject(_ prefix: String, _ job: JobRecord) -> String {
        "\(prefix).\(subjectToken(job.start.cluster)).\(job.start.jobId).\(job.start.startTime)"
    }

    /// The outcome of writing `job`'s archive entry, to be queued in the archive transaction:
    /// the files written, or the error (once: the retries are not announced again).
    func announcement(_ job: JobRecord, files: [String], error: String?) -> OutboxMessage {
        var b = JSONObjectBuilder()
        b.add("ok", error == nil)
        b.add("jobId", job.start.jobId)
        b.add("cluster", job.start.cluster)
        b.add("startTime", job.start.startTime)
        b.add("monitoringStatus", error == nil ? 3 : 2)
        if error == nil {
            if let database = archive.database {
                b.add("database", database.path)
            } else {
                b.add("directory", archive.directory(cluster: job.start.cluster, jobId: job.start.jobId, startTime: job.start.startTime))
            }
            b.add("files", .array(files.map(JSONValue.string)))
        }
        b.addIfPresent("error", error.map(JSONValue.string))
        let subject = Self.archiveSubject("\(config.publish.resultPrefix).archive", job)
        return OutboxMessage(subject: subject, messageID: "archive-\(job.start.cluster)-\(job.start.jobId)-\(job.start.startTime)-\(error == nil ? "written" : "failed")",
                             payload: b.value.jsonBytes)
    }

    /// `statistics` with a zero entry (`avg`, `min`, `max` 0, the metric's unit) for every
    /// metric of the subcluster the buffers had no samples of, so meta.json always carries the
    /// metrics the job-meta schema requires.
    static func completed(_ statistics: JSONValue?, cluster: ClusterConfig, subCluster: String) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = []
        if case .object(let have)? = statistics { members = have }
        for metric in cluster.metrics(of: subCluster) where !members.contains(where: { $0.key == metric.name }) {
            members.append((metric.name, .object([("unit", metric.unitJSON), ("avg", .double(0)), ("min", .double(0)), ("max", .double(0))])))
        }
        return .object(members)
    }

    /// Archive retention: removes the archive entries and rows of finished jobs that ended
    /// more than `days` ago, except protected ones. Returns how many went.
    @discardableResult
    public func applyRetention(now: Int64, keep: Duration) throws -> Int {
        guard keep > .zero else { return 0 }
        var removed = 0
        while true {
            let expired = try exclusive { try stage.expired(before: now - keep.wholeSeconds, limit: 256) }
            if expired.isEmpty { return removed }
            try archive.remove(expired.map(\.archiveKey))
            try exclusive { try database.transaction { for job in expired { try stage.delete(id: job.id) } } }
            removed += expired.count
            counters.add("jobs.retention_removed", expired.count)
            logger.info("archive retention removed jobs", metadata: ["count": "\(expired.count)", "days": "\(keep.wholeSeconds / 86_400)"])
        }
    }

    /// Dead-letters stops that waited longer than the configured time for their start.
    @discardableResult
    public func expireHeldStops(now: Int64, timeout: Int64) throws -> Int {
        try exclusive { try database.transaction {
            let expired = try stage.expireHeldStops(before: now - timeout)
            for held in expired {
                try deadLetter(DeadLetter(stage: "jobs", subject: config.intake.jobSubject, messageID: nil, origin: held.origin,
                                          line: 1, column: 1, code: "held_stop_expired",
                                          reason: "no start arrived within \(timeout) s for stop \(held.stop)",
                                          raw: held.raw, receivedAt: now))
            }
            return expired.count
        } }
    }
}
