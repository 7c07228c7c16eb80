import Bus
import Foundation
import Jobs
import Model
import Store

/// `clusterd.admin.jobs.protect`: marks a job protected from archive retention (or lifts it),
/// recording who did it and why. `{jobId, cluster, startTime?, protected (default true), by, reason}`.
package final class JobAdmin: @unchecked Sendable {
    let stage: JobStage
    let clusters: Reloadable<ClusterRegistry>
    let lock: NSRecursiveLock

    package init(writer: DatabaseWriter, clusters: Reloadable<ClusterRegistry>) {
        stage = JobStage(database: writer.database, clusters: clusters.current)
        lock = writer.lock
        self.clusters = clusters
    }

    package var endpoint: MicroService.Endpoint {
        MicroService.Endpoint(name: "jobs-protect", subject: "clusterd.admin.jobs.protect",
                              metadata: ["description": "protect a job from archive retention, or lift it"]) { [self] message throws(MicroService.Failure) in
            do {
                let o = try StrictObject(try JSONValue.parse(message.data), allowed: ["jobId", "cluster", "startTime", "protected", "by", "reason"])
                guard let jobId = try o.int("jobId"), let cluster = try o.string("cluster") else { throw MicroService.Failure(400, "jobId and cluster are required") }
                guard let by = try o.string("by"), !by.isEmpty else { throw MicroService.Failure(400, "by is required (who protects it)") }
                let protect = o.raw("protected") != .bool(false)
                lock.lock()
                defer { lock.unlock() }
                stage.clusters = clusters.current
                guard let id = try stage.protect(jobId: jobId, cluster: cluster, startTime: try o.int("startTime"), protected: protect, by: by,
                                                 reason: try o.string("reason") ?? "", now: Int64(Date().timeIntervalSince1970)) else {
                    throw MicroService.Failure(404, "no job \(jobId) on \(cluster)")
                }
                return Array(JSONValue.object([("ok", .bool(true)), ("id", .integer(id)), ("jobId", .integer(jobId)), ("cluster", .string(cluster)),
                                               ("protected", .bool(protect))]).jsonText.utf8)
            } catch {
                throw .answer(for: error)
            }
        }
    }
}
