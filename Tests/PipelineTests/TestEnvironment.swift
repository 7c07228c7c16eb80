import Archive
import Config
import BusTestSupport
import Foundation
@testable import Intake
import Jobs
import Logging
import Model
import Nodes
@testable import Observability
@testable import Pipeline
@testable import Processing
import Store

/// Paths of the repository, for config files and subject docs.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    /// Runs one of the repository's Python scripts; returns its exit status and standard output.
    static func runPython(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", path(script)] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try ChildProcess.run(process)
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}

/// A temporary data directory with a migrated database and the example clusters installed.
final class TestEnvironment {
    let directory: URL
    var config: ClusterdConfig
    let processor: JobProcessor
    let nodes: NodeProcessor
    /// Node observations of committed batches, in order.
    let observed = ObservationLog()
    let counters = PipelineCounters()

    init(configure: (inout ClusterdConfig) -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        config = ClusterdConfig()
        config.storage.dataDir = directory.path
        config.jobs.clusterFiles = [Repository.path("config/clusters/fritz/cluster.json"), Repository.path("config/clusters/alex/cluster.json")]
        configure(&config)
        let database = try Database(path: config.databasePath)
        try database.migrate(ClusterdService.migrations)
        let archive = try ArchiveWriter(root: config.archivePath, database: config.archiveDatabasePath)
        for file in config.jobs.clusterFiles { try archive.install(try ClusterConfig(contentsOf: file)) }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let clusters = Reloadable(try ClusterRegistry.load(archiveRoot: config.archivePath))
        processor = JobProcessor(database: database, clusters: clusters, archive: archive, config: config, counters: counters, logger: logger)
        nodes = NodeProcessor(database: database, clusters: clusters, probe: nil, config: config, counters: counters, logger: logger,
                              onCommit: { [observed] in observed.append($0) })
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    private var sequence = 0

    /// Processes one message (as if delivered by the stream) and returns its result JSON.
    @discardableResult
    func send(_ body: String, messageID: String? = nil, now: Int64 = 1_800_000_000) throws -> JSONValue {
        let id = try deliver(body, to: processor, subject: "cc.job.event", messageID: messageID, now: now)
        try processor.archivePending()
        return try result(for: id)
    }

    /// Hands `body` to `stage` as one delivery; returns the message id used.
    private func deliver(_ body: String, to stage: StageProcessor, subject: String, messageID: String?, now: Int64) throws -> String {
        sequence += 1
        let id = messageID ?? "m\(sequence)"
        _ = try stage.process([IncomingMessage(subject: subject, data: Array(body.utf8), messageID: id, origin: "TEST:\(sequence)", receivedAt: now)])
        return id
    }

    /// Processes one node-state message and returns its result JSON.
    @discardableResult
    func sendNodes(_ body: String, messageID: String? = nil, now: Int64 = 1_800_000_000) throws -> JSONValue {
        let id = try deliver(body, to: nodes, subject: "cc.node.state", messageID: messageID, now: now)
        return try result(for: id, stage: "nodes")
    }

    /// The result published (queued in the outbox) for `messageID`.
    func result(for messageID: String, stage: String = "jobs") throws -> JSONValue {
        let rows = try Outbox(processor.database).pending(limit: 100_000).filter { $0.subject == "clusterd.result.\(stage).\(messageID)" }
        guard let last = rows.last else { throw TestFailure("no result for \(messageID)") }
        return try JSONValue.parse(last.payload)
    }

    /// Dead letters queued in the outbox, parsed.
    func deadLetters(stage: String = "jobs") throws -> [JSONValue] {
        try Outbox(processor.database).pending(limit: 100_000).filter { $0.subject == "clusterd.dlq.\(stage)" }.map { try JSONValue.parse($0.payload) }
    }

    /// Per-line statuses of a result (`started`, `rejected:unknown_cluster`, ...).
    static func statuses(_ result: JSONValue) -> [String] {
        guard case .array(let events)? = result["events"] else { return [] }
        return events.map { e in
            guard case .string(let status)? = e["status"] else { return "?" }
            if status == "rejected", case .string(let code)? = e["code"] { return "rejected:\(code)" }
            return status
        }
    }

    /// One row of a query, as text columns.
    func query(_ sql: String) throws -> [[String]] {
        let statement = try processor.database.prepare(sql)
        return try statement.rows { s in (0..<8).map { s.text(Int32($0)) } }
    }
}

/// Observations handed on after commits.
final class ObservationLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [NodeObservation] = []
    func append(_ o: [NodeObservation]) { lock.lock(); items += o; lock.unlock() }
    var all: [NodeObservation] { lock.lock(); defer { lock.unlock() }; return items }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension ClusterdService {
    /// A started service for an integration test: on `server`, data under `directory`, the
    /// example clusters, no /metrics listener (127.0.0.1:9464 belongs to FirstHourTests), quiet
    /// logs; `configure` adjusts the rest.
    static func started(server: String, directory: URL, configure: (inout ClusterdConfig) -> Void = { _ in }) throws -> (ClusterdService, ClusterdConfig) {
        var config = ClusterdConfig()
        config.nats.servers = [server]
        config.storage.dataDir = directory.path
        config.jobs.clusterFiles = [Repository.path("config/clusters/fritz/cluster.json"), Repository.path("config/clusters/alex/cluster.json")]
        config.observability.listen = ""
        configure(&config)
        var logger = Logger(label: "clusterd-test")
        logger.logLevel = .critical
        let service = ClusterdService(config: config, logger: logger)
        try service.start()
        return (service, config)
    }
}
