import Bus
import Foundation
import Health
import Model

extension ClusterdService {
    /// What a configuration reload took over.
    public struct ReloadSummary: Sendable, Equatable {
        /// Checks in the new library.
        public var checks: Int
        /// Hosts in the new topology.
        public var hosts: Int
        /// Clusters known now.
        public var clusters: [String]
    }

    /// Why a reload was refused; the running configuration stays.
    public struct ReloadError: Error, Sendable, CustomStringConvertible {
        /// The file and line at fault, and the reason.
        public let description: String
    }

    /// Re-reads `health.topology`, `health.checks`, `jobs.cluster_files` and the archive's
    /// `cluster.json` files (SIGHUP, `clusterd.admin.config.reload`). Everything is parsed
    /// first: one invalid file refuses the whole reload and the running state stays.
    /// Then the job, node and metric stages take the new clusters from their next batch,
    /// and the health engine takes the checks and topology between two inputs (alerts of
    /// checks that remain keep their state; those of removed checks resolve).
    /// `clusterd.yaml` itself is not re-read: its settings need a restart.
    @discardableResult
    public func reload(origin: String) throws(ReloadError) -> ReloadSummary {
        reloading.lock()
        defer { reloading.unlock() }
        guard let health, let archive else { throw ReloadError(description: "clusterd is still starting; nothing reloaded") }
        let settings = config.health
        let topology: Topology, library: CheckLibrary, files: [ClusterConfig], archived: ClusterRegistry
        do {
            topology = try settings.topology.map { try Topology(contentsOf: $0) } ?? Topology()
            library = try settings.checks.map { try CheckLibrary(contentsOf: $0) } ?? CheckLibrary([])
            files = try config.jobs.clusterFiles.map { try ClusterConfig(contentsOf: $0) }
            archived = try archive.clusters()
            for file in files { try archive.install(file) }
        } catch {
            counters.add("config.reload_errors")
            logger.error("configuration reload refused; the running configuration stays", metadata: ["origin": "\(origin)", "error": "\(error)"])
            throw ReloadError(description: "\(error)")
        }
        var byName = archived.clusters
        for file in files { byName[file.name] = file }
        let registry = ClusterRegistry(Array(byName.values))
        clusters.replace(with: registry)
        self.topology.replace(with: topology)
        let now = Int64(Date().timeIntervalSince1970)
        // Applied on the health loop's thread; queued there even if the wait runs out.
        let applied = health.inspect(timeout: 30) { engine in engine.reload(library: library, topology: topology, now: now) } != nil
        // After the engine has the new checks: the metric path then re-registers every series.
        watchedMetrics.replace(with: library.metricNames)
        counters.add("config.reloads")
        let summary = ReloadSummary(checks: library.checks.count, hosts: topology.hosts.count, clusters: byName.keys.sorted())
        logger.notice("configuration reloaded", metadata: ["origin": "\(origin)", "checks": "\(summary.checks)", "hosts_in_topology": "\(summary.hosts)",
                                                           "clusters": "\(summary.clusters.joined(separator: ","))",
                                                           "health": "\(applied ? "applied" : "queued behind a busy health loop")"])
        return summary
    }

    /// `clusterd.admin.config.reload`: ``reload(origin:)`` on request; replies
    /// `{"ok": true, "checks", "hosts", "clusters"}` or a 400 naming the file and line at fault.
    var reloadEndpoint: MicroService.Endpoint {
        var endpoint = MicroService.Endpoint(name: "config-reload", subject: "clusterd.admin.config.reload",
                              metadata: ["description": "re-read topology, checks and cluster files; an invalid file keeps the running ones (admin)"]) {
            [weak self] _ throws(MicroService.Failure) in
            guard let self else { throw MicroService.Failure(503, "stopping") }
            do {
                let s = try self.reload(origin: "clusterd.admin.config.reload")
                return Array(JSONValue.object([("ok", .bool(true)), ("checks", .integer(Int64(s.checks))), ("hosts", .integer(Int64(s.hosts))),
                                               ("clusters", .array(s.clusters.map(JSONValue.string)))]).jsonText.utf8)
            } catch {
                throw MicroService.Failure(400, "reload refused, the running configuration stays: \(error)")
            }
        }
        // The running configuration in the reply's shape, so the audit shows what the reload changed.
        endpoint.before = MicroService.StateRead(lock: nil) { [weak self] _ in
            guard let self else { return Array("null".utf8) }
            let checks = health?.inspect { engine in engine.library.checks.count }
            return Array(JSONValue.object([("checks", checks.map { .integer(Int64($0)) } ?? .null),
                                           ("hosts", .integer(Int64(topology.current.hosts.count))),
                                           ("clusters", .array(clusters.current.clusters.keys.sorted().map(JSONValue.string)))]).jsonText.utf8)
        }
        return endpoint
    }
}
