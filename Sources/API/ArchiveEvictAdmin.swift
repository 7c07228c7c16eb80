import Bus
import Foundation
import Model
import Processing

/// `clusterd.admin.archive.evict`: runs the archive's disk-budget pass now (`{"dryRun": true}`
/// lists what would go and touches nothing). The scheduler runs the same pass hourly.
public struct ArchiveEvictAdmin: Sendable {
    let jobs: JobProcessor
    let quota: ArchiveQuota

    /// The endpoint over `jobs` with `quota`.
    public init(jobs: JobProcessor, quota: ArchiveQuota) {
        self.jobs = jobs
        self.quota = quota
    }

    /// The endpoint.
    public var endpoint: MicroService.Endpoint {
        var endpoint = MicroService.Endpoint(name: "archive-evict", subject: "clusterd.admin.archive.evict",
                              metadata: ["description": "evict finished, unprotected jobs oldest first while the archive is over its budget (dryRun: list them)"]) { [self] message throws(MicroService.Failure) in
            do {
                let request = message.data.allSatisfy { $0 == 0x20 || $0 == 0x0a } ? JSONValue.object([]) : try JSONValue.parse(message.data)
                let o = try StrictObject(request, allowed: ["dryRun", "by"])
                guard quota.isSet else {
                    throw MicroService.Failure(409, "no archive budget is set: jobs.archive_quota_bytes or jobs.archive_quota_percent")
                }
                let dryRun = o.raw("dryRun") == .bool(true)
                let named = try o.string("by")
                let by = message.header(AuditedEndpoints.actorHeader) ?? named ?? "unknown"
                let report = try jobs.evict(quota, dryRun: dryRun, by: by, now: Int64(Date().timeIntervalSince1970))
                return report.json(dryRun: dryRun).jsonBytes
            } catch {
                throw .answer(for: error)
            }
        }
        // The archive's use before the pass (the reply's evicted jobs are what changed).
        endpoint.before = MicroService.StateRead(lock: nil) { [self] _ in
            guard quota.isSet else { return Array("null".utf8) }
            let (used, budget) = jobs.archiveUsage(quota)
            return JSONValue.object([("usedBytes", .integer(used)), ("budgetBytes", .integer(budget))]).jsonBytes
        }
        return endpoint
    }
}
