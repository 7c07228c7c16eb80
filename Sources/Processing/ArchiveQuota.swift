import Archive
import Config
import Foundation
import Jobs
import Model
import Threads

/// The job archive's disk budget (data_board_backend's model): above the high watermark,
/// finished, unprotected jobs leave the archive and the job table oldest first until the low
/// watermark; protected jobs and those of kept users, projects and tags never go.
public struct ArchiveQuota: Sendable {
    /// A budget in bytes (the archive's files), or …
    public var bytes: Int64
    /// … in percent of the archive's file system (everything on it counts).
    public var percent: Double
    public var highWatermark: Double
    public var lowWatermark: Double
    public var keepUsers: [String]
    public var keepProjects: [String]
    public var keepTags: [String]

    /// The budget of `jobs.archive_quota_*`.
    public init(_ jobs: ClusterdConfig.Jobs) {
        bytes = jobs.archiveQuotaBytes
        percent = jobs.archiveQuotaPercent
        highWatermark = jobs.archiveHighWatermarkPercent
        lowWatermark = jobs.archiveLowWatermarkPercent
        keepUsers = jobs.archiveKeepUsers
        keepProjects = jobs.archiveKeepProjects
        keepTags = jobs.archiveKeepTags
    }

    /// Whether a budget is set.
    public var isSet: Bool { bytes > 0 || percent > 0 }

    /// Bytes in use and the budget, for `archive` (a budget in percent: of the file system
    /// its entries are on; the SQLite archive's free pages count as free, since evicting rows
    /// frees pages in the file, not on the file system, and new entries fill them first).
    func usage(of archive: ArchiveWriter) -> (used: Int64, budget: Int64) {
        if bytes > 0 { return (archive.totalBytes(), bytes) }
        var fs = statvfs()
        guard statvfs(archive.database?.path ?? archive.root, &fs) == 0 else { return (0, 0) }
        let total = Int64(fs.f_blocks) * Int64(fs.f_frsize)
        let reusable = (try? archive.database?.reusableBytes()) ?? 0
        return (total - Int64(fs.f_bfree) * Int64(fs.f_frsize) - reusable, Int64(Double(total) * percent / 100))
    }
}

/// What an eviction pass did (or, dry, would do).
public struct EvictionReport: Sendable {
    /// Bytes in use before, the budget, and the two watermarks in bytes.
    public var used: Int64
    public var budget: Int64
    public var high: Int64
    public var low: Int64
    /// The jobs evicted (or that would be), oldest first, with their bytes.
    public var jobs: [(job: JobRecord, bytes: Int64)]

    /// As `clusterd.admin.archive.evict` answers.
    public func json(dryRun: Bool) -> JSONValue {
        var b = JSONObjectBuilder()
        b.add("dryRun", dryRun)
        b.add("usedBytes", used)
        b.add("budgetBytes", budget)
        b.add("highBytes", high)
        b.add("lowBytes", low)
        b.add(dryRun ? "wouldEvict" : "evicted", .array(jobs.map { j in
            var e = JSONObjectBuilder()
            e.add("jobId", j.job.start.jobId)
            e.add("cluster", j.job.start.cluster)
            e.add("startTime", j.job.start.startTime)
            e.add("user", j.job.start.user)
            e.add("project", j.job.start.project)
            e.add("bytes", j.bytes)
            return e.value
        }))
        b.add("freedBytes", jobs.reduce(0) { $0 + $1.bytes })
        return b.value
    }
}

extension JobProcessor {
    /// The archive's bytes in use and its budget under `quota`.
    public func archiveUsage(_ quota: ArchiveQuota) -> (used: Int64, budget: Int64) { quota.usage(of: archive) }

    /// Evicts (or with `dryRun` lists) finished, unprotected jobs oldest first while the archive
    /// is above the high watermark, down to the low one. Each eviction is recorded with `by`
    /// and the reason in `clusterd_archive_eviction` — pending, in one transaction per batch,
    /// before the batch's files go; the jobs' rows go and the records are marked done after. A
    /// crash in between leaves pending records that ``finishEvictions()`` completes (at start
    /// and before every pass), so archive and table agree whatever the watermarks say then.
    public func evict(_ quota: ArchiveQuota, dryRun: Bool, by: String, now: Int64) throws -> EvictionReport {
        if !dryRun { try finishEvictions() }
        let (used, budget) = archiveUsage(quota)
        let high = Int64(Double(budget) * quota.highWatermark / 100), low = Int64(Double(budget) * quota.lowWatermark / 100)
        var report = EvictionReport(used: used, budget: budget, high: high, low: low, jobs: [])
        guard quota.isSet, budget > 0, used > high else { return report }
        var freed: Int64 = 0, offset = 0
        let reason = "archive at \(used) of \(budget) bytes, above the high watermark (\(quota.highWatermark) %): down to \(quota.lowWatermark) %"
        while used - freed > low {
            let batch = try exclusive {
                try stage.evictionCandidates(keepUsers: quota.keepUsers, keepProjects: quota.keepProjects, keepTags: quota.keepTags,
                                             offset: offset, limit: 64)
            }
            if batch.isEmpty { break }
            var taken: [(job: JobRecord, bytes: Int64)] = []
            for job in batch where used - freed > low {
                let bytes = archive.bytes(of: job.archiveKey)
                freed += bytes
                taken.append((job, bytes))
            }
            report.jobs += taken
            if dryRun {
                offset += batch.count
                continue
            }
            // The intent first; then the files; then the rows. Each step can be repeated.
            let records = try exclusive { try database.transaction {
                try taken.map { try stage.recordEviction($0.job, bytes: $0.bytes, reason: reason, by: by, at: now) }
            } }
            try archive.remove(taken.map(\.job.archiveKey))
            CrashPoint.reached("archive.evict.files-removed")
            try exclusive { try database.transaction {
                for (record, (job, _)) in zip(records, taken) { try stage.finishEviction(record, job: job.id) }
            } }
            counters.add("jobs.evicted", taken.count)
        }
        if !dryRun && !report.jobs.isEmpty {
            logger.warning("archive over its budget: jobs evicted", metadata: ["count": "\(report.jobs.count)", "freed_bytes": "\(freed)",
                                                                                "used_bytes": "\(used)", "budget_bytes": "\(budget)", "by": "\(by)"])
        }
        return report
    }

    /// Finishes the evictions a stop interrupted (recorded, files perhaps partly removed, rows
    /// still there): their files go, then their rows. Returns how many.
    @discardableResult
    public func finishEvictions() throws -> Int {
        let pending = try exclusive { try stage.pendingEvictions() }
        guard !pending.isEmpty else { return 0 }
        try archive.remove(pending.map { ArchiveWriter.JobKey(cluster: $0.cluster, jobId: $0.jobId, startTime: $0.startTime) })
        try exclusive { try database.transaction { for p in pending { try stage.finishEviction(p.id, job: p.job) } } }
        counters.add("jobs.evicted", pending.count)
        logger.warning("finished archive evictions a stop had interrupted", metadata: ["count": "\(pending.count)"])
        return pending.count
    }
}

extension JobRecord {
    /// The job's key in the archive.
    var archiveKey: ArchiveWriter.JobKey { ArchiveWriter.JobKey(cluster: start.cluster, jobId: start.jobId, startTime: start.startTime) }
}
