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

    static let keys = ["jobId", "cluster", "startTime", "protected", "by", "reason"]

    package init(writer: DatabaseWriter, clusters: Reloadable<ClusterRegistry>) {
        stage = JobStage(database: writer.database, clusters: clusters.current)
        lock = writer.lock
        self.clusters = clusters
    }

    package var endpoint: MicroService.Endpoint {
        var endpoint = MicroService.Endpoint(name: "jobs-protect", subject: "clusterd.admin.jobs.protect",
                              metadata: ["description": "protect a job from archive retention, or lift it"]) { [self] message throws(MicroService.Failure) in
            do {
                let o = try StrictObject(try JSONValue.parse(message.data), allowed: Self.keys)
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
        endpoint.before = MicroService.StateRead(lock: lock) { [self] message in before(message).jsonBytes }
        return endpoint
    }

    /// The job's protection before a request changes it (`null`: no such job, or no job named).
    func before(_ message: BusMessage) -> JSONValue {
        // A request the action refuses names nothing: null.
        guard let o = try? StrictObject(try JSONValue.parse(message.data), allowed: Self.keys), let jobId = try? o.int("jobId"),
              let cluster = try? o.string("cluster") else { return .null }
        let found: (id: Int64, by: String?, reason: String, at: Int64)?
        do { found = try stage.protection(jobId: jobId, cluster: cluster, startTime: (try? o.int("startTime")) ?? nil) } catch { return .unreadable(error) }
        guard let job = found else { return .null }
        var b = JSONObjectBuilder()
        b.add("id", job.id)
        b.add("jobId", jobId)
        b.add("cluster", cluster)
        b.add("protected", job.by != nil)
        if let by = job.by {
            b.add("protectedBy", by)
            b.add("reason", job.reason)
            b.add("protectedAt", job.at)
        }
        return b.value
    }
}
