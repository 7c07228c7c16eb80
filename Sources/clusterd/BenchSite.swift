import Config
import Foundation
import Logging
import NATSServerProcess
import Synchronization

/// What every end-to-end benchmark starts from: a nats-server of its own, a temporary data
/// directory (removed with the site) and the configuration of a `clusterd run` against them,
/// with cluster `fritz` whose nodes are `nodes` (e.g. `f[0000-1999]`).
final class BenchSite {
    let server: NATSServer
    let directory: URL
    var config = ClusterdConfig()
    let logger: Logger

    init(_ name: String, nodes: String) throws {
        server = try NATSServer()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let clusterFile = directory.appendingPathComponent("fritz.json")
        try Data(#"{"name":"fritz","metricConfig":[],"subClusters":[{"name":"main","nodes":"\#(nodes)"}]}"#.utf8).write(to: clusterFile)
        config.nats.servers = [server.url]
        config.storage.dataDir = directory.path
        config.jobs.clusterFiles = [clusterFile.path]
        var logger = Logger(label: "bench") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .error
        self.logger = logger
    }

    /// Hosts `f0000` … for `count` hosts.
    static func hosts(_ count: Int) -> String { "f[0000-\(String(format: "%04d", count - 1))]" }

    deinit { try? FileManager.default.removeItem(at: directory) }
}

/// A number one benchmark thread moves and another reads (lines counted, lines sent, a stop flag).
final class SharedCount: Sendable {
    private let n = Atomic<Int>(0)
    func add(_ k: Int) { n.add(k, ordering: .relaxed) }
    func set(_ v: Int) { n.store(v, ordering: .relaxed) }
    var value: Int { n.load(ordering: .relaxed) }
}
