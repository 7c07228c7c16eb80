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

    /// The file system the site's directory (database and archive) lives on, as a benchmark's
    /// figures depend on it: type, device and mount point from /proc/self/mountinfo, and for
    /// ext4 whether it has a journal and whether small directories live in their inode
    /// (`inline_data`, when the device is readable).
    var fileSystem: String { Self.fileSystem(of: directory.path) }

    /// The file system `path` lives on (see ``fileSystem``).
    static func fileSystem(of path: String) -> String {
        let path = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard let table = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return "unknown" }
        var best: (point: String, type: String, source: String)?
        for line in table.split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            let left = halves[0].split(separator: " "), right = halves.count > 1 ? halves[1].split(separator: " ") : []
            guard left.count > 4, right.count > 1 else { continue }
            let point = String(left[4])
            if path == point || path.hasPrefix(point == "/" ? "/" : point + "/"), point.count >= (best?.point.count ?? 0) {
                best = (point, String(right[0]), String(right[1]))
            }
        }
        guard let best else { return "unknown" }
        var text = "\(best.type) on \(best.source) at \(best.point)"
        if best.type == "ext4" {
            // Without a journal (this VM's root file system), ext4 skips every inode freed in the
            // last 60–360 s when it allocates one (`recently_deleted`): after a big deletion,
            // making directories is 10–20× slower for minutes.
            let device = (best.source as NSString).lastPathComponent
            let journaled = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/fs/jbd2")) ?? []).contains { $0.hasPrefix(device + "-") }
            text += journaled ? ", journaled" : ", no journal"
            // The ext4 superblock (at byte 1024): s_feature_incompat at +0x60, INLINE_DATA 0x8000.
            if let device = FileHandle(forReadingAtPath: best.source) {
                defer { try? device.close() }
                try? device.seek(toOffset: 1024 + 0x60)
                if let bytes = try? device.read(upToCount: 4), bytes.count == 4 {
                    let incompat = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
                    text += incompat & 0x8000 != 0 ? ", inline_data" : ", no inline_data"
                }
            }
        }
        return text
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
