import ArgumentParser
import Bus
import Config
import Foundation
import Logging
import NATSServerProcess
import Archive
import Intake
import Model
import Observability
import Pipeline
import Processing
import Store

/// `clusterd bench`: measured figures, never asserted in tests.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput on this machine and print the figures.",
        subcommands: [JobsBench.self, HealthBench.self, IngestBench.self, AlertsBench.self]
    )
}

/// Events per second through the durable path: JetStream stream → pull consumer → one SQLite
/// transaction per batch → ack → outbox → archive entry.
struct JobsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "Publish N jobs (start + stop) into a temporary nats-server and time clusterd applying them."
    )

    @Option(help: "Number of jobs (2 events each).") var jobs = 20_000
    @Option(help: "Write the archive under this directory (a file system of its own, as README's Deploying advises) instead of beside the database in $TMPDIR.")
    var archiveDir: String?
    @Option(parsing: .upToNextOption,
            help: "Job entries as the v3 directory tree (file) or as rows of one SQLite file, cc-backend's sqlite archive (sqlite); both (`file sqlite`): measured in turn, medians side by side.")
    var archiveKind: [ClusterdConfig.ArchiveKind] = [.file]
    @Option(help: "Messages per fetch and transaction.") var batch = 256
    @Option(help: "Lines (events) per NATS message.") var linesPerMessage = 1
    @Flag(help: "Keep metaData and hwthreads small (default: realistic cc-slurm-adapter sized events).") var small = false
    @Flag(help: "Send monitoringStatus 0, so no archive entries are written (measures the database path alone).") var noArchive = false

    @Option(help: "Jobs running at once: each stop follows its start this many jobs later, as on a busy cluster (0: every start first, then every stop — the two stages then never overlap).")
    var running = 1_000

    @Option(help: "Also measure with this many jobs already in the job table (e.g. 1000000), to show a cost that grows with it.")
    var preload = 0

    @Option(help: "Measurements (each in a fresh server and directory; with --preload, pairs taken in turn); the median is printed.")
    var runs = 1

    @Flag(help: "Measure the writer's part alone: the job stage applying the same events in batches on a temporary database, without broker, archive files or publishing (CPU time per event, steadier than the end-to-end figure).")
    var writerOnly = false

    func run() throws {
        // This VM's speed moves by a third between two runs: the cases (with and without --preload, each archive
        // kind) alternate, so a slow spell costs all of them, and the medians are compared.
        var seen = Set<ClusterdConfig.ArchiveKind>()
        let kinds = writerOnly || noArchive ? [archiveKind[0]] : archiveKind.filter { seen.insert($0).inserted }
        var plain: [ClusterdConfig.ArchiveKind: [Double]] = [:], loaded: [ClusterdConfig.ArchiveKind: [Double]] = [:]
        func once(_ preloaded: Int, _ kind: ClusterdConfig.ArchiveKind) throws -> Double {
            writerOnly ? try measureWriter(preloaded: preloaded) : try measure(preloaded: preloaded, kind: kind)
        }
        for _ in 0..<max(1, runs) {
            for kind in kinds {
                plain[kind, default: []].append(try once(0, kind))
                if preload > 0 { loaded[kind, default: []].append(try once(preload, kind)) }
            }
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        for kind in kinds {
            let label = kinds.count > 1 ? "archive \(kind.rawValue): " : ""
            let plain = plain[kind] ?? []
            if runs > 1 {
                print(String(format: "%@median of %d runs: %.0f events/s (runs %@)", label, plain.count, median(plain),
                             plain.map { String(format: "%.0f", $0) }.joined(separator: ", ")))
            }
            guard preload > 0, let loaded = loaded[kind] else { continue }
            print(String(format: "%@with %d jobs already stored: %.0f events/s, %.0f %% of the %.0f events/s without (goal: within 10 %%)%@",
                         label, preload, median(loaded), 100 * median(loaded) / median(plain), median(plain), runs > 1 ? " — medians of \(runs) runs each" : ""))
        }
    }

    /// One measurement in a fresh server and data directory; returns events/s.
    func measure(preloaded: Int, kind archiveKind: ClusterdConfig.ArchiveKind) throws -> Double {
        let site = try BenchSite("bench", nodes: "f[0101-0999]")
        defer { withExtendedLifetime(site) {} }  // its directory goes with it
        var config = site.config
        config.intake.batch = batch
        let archive = archiveDir.map { "\($0)/clusterd-bench-archive-\(UUID().uuidString)" }
        defer { if let archive { try? FileManager.default.removeItem(atPath: archive) } }
        if let archive {
            try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
            config.storage.archive = archive
        }
        config.storage.archiveKind = archiveKind
        if archiveKind == .sqlite { config.storage.archiveDatabase = "\(config.archivePath)/job-archive.db" }
        let server = site.server, logger = site.logger
        if preloaded > 0 { try preload(preloaded, config: config, logger: logger) }

        // Publish everything first (captured by the stream), then let clusterd drain it.
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "bench"))
        let js = try JetStream(client)
        try js.ensureStream(StreamConfig(name: config.intake.stream, description: "bench", subjects: [config.intake.jobSubject, config.intake.nodeStateSubject]))
        let publishStart = ContinuousClock.now
        var bytes = 0
        for body in messageBodies() {
            bytes += body.count
            try client.publish(config.intake.jobSubject, body)
        }
        try client.flush(timeout: .seconds(60))
        let published = ContinuousClock.now - publishStart
        let stored = try js.streamMessageCount(config.intake.stream)

        let service = ClusterdService(config: config, logger: logger)
        let begin = ContinuousClock.now
        try service.start()
        // Waits on the service's counters (a count over the table every 20 ms took a third of
        // a core from the path measured), then checks the table once: events in = rows.
        func applied() -> Int { service.counters.snapshot.filter { $0.key.hasPrefix("jobs.events.") }.values.reduce(0, +) }
        func settled() -> Int {
            noArchive ? applied() / 2 : service.counters["jobs.archived"] + service.counters["jobs.archive_failed"]
        }
        // When the intake has applied every event: what the archive worker still does after
        // that shows which of the two limits the path.
        var intakeDone: ContinuousClock.Instant?
        while settled() < jobs {
            Thread.sleep(forTimeInterval: 0.005)
            if intakeDone == nil && applied() >= 2 * jobs { intakeDone = ContinuousClock.now }
        }
        let elapsed = ContinuousClock.now - begin
        let busy = service.writer?.busy ?? .zero
        service.stop()
        let db = try Database(path: config.databasePath, readOnly: true)
        let done = noArchive ? "SELECT count(*) FROM job WHERE job_state <> 'running' AND job_id <= ?"
            : "SELECT count(*) FROM job WHERE monitoring_status = 3 AND job_id <= ?"
        let finished = try db.prepare(done).first([.integer(Int64(jobs))]) { $0.int(0) } ?? 0
        guard finished == jobs else {
            throw ValidationError("\(finished) of \(jobs) jobs are \(noArchive ? "stopped" : "archived") in the job table")
        }
        let seconds = elapsed.secondsValue
        let pubSeconds = published.secondsValue
        let events = 2 * jobs
        print("jobs: \(jobs), events: \(events), messages in stream: \(stored), \(linesPerMessage) line(s)/message, batch \(batch), avg event \(bytes / events) B, "
              + (running > 0 ? "each stop \(min(running, jobs)) jobs after its start" : "every start first, then every stop")
              + (preloaded > 0 ? ", \(preloaded) jobs already stored" : ""))
        let kind = archiveKind == .sqlite ? "archive (sqlite: one row per job)" : "archive (v3 tree: two directories and a file per job)"
        if let archive {
            print("database on \(site.fileSystem); \(kind) on \(BenchSite.fileSystem(of: archive))")
        } else {
            print("database and \(kind) on \(site.fileSystem)")
        }
        print(String(format: "publish into JetStream: %.2f s (%.0f events/s)", pubSeconds, Double(events) / pubSeconds))
        print(String(format: "durable path (fetch, decode, validate, SQLite commit, ack, results, archive): %.2f s", seconds))
        print(String(format: "  %.0f events/s, %.0f jobs/s archived; the one writer held %.0f %% of the time (%.0f µs per event)",
                     Double(events) / seconds, Double(jobs) / seconds, 100 * busy.secondsValue / seconds, 1e6 * busy.secondsValue / Double(events)))
        if !noArchive, let intakeDone {
            print(String(format: "  every event applied after %.2f s (%.0f events/s); the archive entries %.2f s later",
                         (intakeDone - begin).secondsValue, Double(events) / (intakeDone - begin).secondsValue, (begin + elapsed - intakeDone).secondsValue))
            // What the entries take on disk: the file's pages, or the tree's blocks (directories included).
            let onDisk = config.archiveDatabasePath.map { Self.allocated($0) + Self.allocated($0 + "-wal") } ?? Self.allocated(config.archivePath)
            print(String(format: "  the archive takes %.1f MB on disk (%.0f bytes per job%@)", Double(onDisk) / 1e6, Double(onDisk) / Double(jobs + preloaded),
                         preloaded > 0 ? " stored" : ""))
        }
        return Double(events) / seconds
    }

    /// The bytes the file system allocated to `path` and, for a directory, everything below it.
    static func allocated(_ path: String) -> Int64 {
        var st = stat()
        guard lstat(path, &st) == 0 else { return 0 }
        var total = Int64(st.st_blocks) * 512
        if (st.st_mode & S_IFMT) == S_IFDIR, let names = try? FileManager.default.contentsOfDirectory(atPath: path) {
            for name in names { total += allocated("\(path)/\(name)") }
        }
        return total
    }

    /// The job stage's part under the writer, in this thread: batches of `batch` messages in
    /// the order the end-to-end run publishes them; the outbox emptied after each, as the
    /// publisher would.
    func measureWriter(preloaded: Int) throws -> Double {
        let site = try BenchSite("bench-writer", nodes: "f[0101-0999]")
        defer { withExtendedLifetime(site) {} }
        let config = site.config
        let database = try Database(path: config.databasePath)
        try database.migrate(ClusterdService.migrations)
        if preloaded > 0 { try preloadRows(preloaded, into: database) }
        let archive = try ArchiveWriter(root: config.archivePath)
        for file in config.jobs.clusterFiles { try archive.install(try ClusterConfig(contentsOf: file)) }
        let clusters = Reloadable(try ClusterRegistry.load(archiveRoot: config.archivePath))
        let processor = JobProcessor(database: database, clusters: clusters, archive: archive, config: config,
                                     counters: PipelineCounters(), logger: site.logger)
        let messages = messageBodies().enumerated().map { i, body in
            IncomingMessage(subject: config.intake.jobSubject, data: body, messageID: nil, origin: "BENCH:\(i + 1)",
                            receivedAt: 1_700_100_000)
        }
        func cpu() -> Double {
            var usage = rusage()
            getrusage(__rusage_who_t(1), &usage)  // RUSAGE_THREAD
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        }
        let cpuStart = cpu(), begin = ContinuousClock.now
        var index = 0
        while index < messages.count {
            let end = min(messages.count, index + batch)
            _ = try processor.process(Array(messages[index..<end]))
            try database.execute("DELETE FROM outbox")
            index = end
        }
        let seconds = (ContinuousClock.now - begin).secondsValue, cpuSeconds = cpu() - cpuStart
        let stopped = try database.prepare("SELECT count(*) FROM job WHERE job_state <> 'running' AND job_id <= ?").first([.integer(Int64(jobs))]) { $0.int(0) } ?? 0
        guard stopped == jobs else { throw ValidationError("\(stopped) of \(jobs) jobs are stopped in the job table") }
        print(String(format: "writer only%@: %d events in %.2f s: %.1f µs CPU per event (%.0f events/s on one core)",
                     preloaded > 0 ? ", \(preloaded) jobs already stored" : "", 2 * jobs, seconds,
                     1e6 * cpuSeconds / Double(2 * jobs), Double(2 * jobs) / cpuSeconds))
        return Double(2 * jobs) / cpuSeconds
    }

    /// The events of both measurements, `linesPerMessage` to a message: the starts, and each
    /// stop `running` jobs after its start (all stops last with 0).
    func messageBodies() -> [[UInt8]] {
        let lag = running > 0 ? min(running, jobs) : jobs
        var lines: [String] = []
        for i in 1...(jobs + lag) {
            if i <= jobs { lines.append(start(i)) }
            if i > lag { lines.append(stop(i - lag)) }
        }
        return stride(from: 0, to: lines.count, by: max(1, linesPerMessage)).map {
            Array(lines[$0..<min(lines.count, $0 + max(1, linesPerMessage))].joined(separator: "\n").utf8)
        }
    }

    /// `count` ended, archived jobs in the job table (ids above the measured ones, spread over
    /// 80 hosts and five years), written directly in one transaction after clusterd created
    /// the schema. Their archive directories are not written (a million small files).
    func preload(_ count: Int, config: ClusterdConfig, logger: Logger) throws {
        let service = ClusterdService(config: config, logger: logger)
        try service.start()
        service.stop()
        try preloadRows(count, into: Database(path: config.databasePath))
        // The SQLite archive holds their entries too (the tree's directories are not written).
        if let path = config.archiveDatabasePath { try preloadEntries(count, into: Database(path: path)) }
    }

    /// Rows of the SQLite archive for the preloaded jobs, meta.json sized like the run's.
    func preloadEntries(_ count: Int, into db: Database) throws {
        let meta = "{\"jobId\":0,\"metaData\":{\"jobScript\":\"\(String(repeating: "x", count: 400))\"}}\n"
        try db.transaction {
            try db.prepare("""
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
                INSERT INTO jobs (job_id, cluster, start_time, meta_json, created_at, updated_at)
                SELECT 10000000 + i, 'fritz', 1550000000 + i * 150, CAST(? AS BLOB), 1700000000, 1700000000 FROM n
                """).run([.integer(Int64(count)), .text(meta)])
        }
    }

    /// The rows of ``preload(_:config:logger:)``, into a migrated database.
    func preloadRows(_ count: Int, into db: Database) throws {
        let started = ContinuousClock.now
        try db.transaction {
            try db.prepare("""
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
                INSERT INTO job (job_id, cluster, subcluster, start_time, hpc_user, project, cluster_partition, duration, walltime, job_state,
                                 meta_data, resources, num_nodes, num_hwthreads, shared, monitoring_status)
                SELECT 10000000 + i, 'fritz', 'main', 1550000000 + i * 150, 'u' || (i % 50), 'p' || (i % 9), 'main', 3600, 86400, 'completed',
                       '{"jobName":"relax_' || i || '"}', '[{"hostname":"f0' || (101 + i % 80) || '"}]', 1, 72, 'none', 3
                FROM n
                """).run([.integer(Int64(count))])
            try db.execute("""
                INSERT INTO clusterd_job_event (job, start_event, stop_event)
                SELECT id, json_object('jobId', job_id, 'cluster', cluster, 'startTime', start_time), json_object('jobId', job_id, 'stopTime', start_time + 3600)
                FROM job
                """)
        }
        print(String(format: "preloaded %d jobs in %.1f s", count, (ContinuousClock.now - started).secondsValue))
    }

    func start(_ i: Int) -> String {
        let meta = small ? "" : ##",\"metaData\":{\"jobName\":\"relax_\##(i)\",\"jobScript\":\"#!/bin/bash -l\\n#SBATCH --ntasks=72\\nsrun ./vasp_std \\u003e out.log\\n\",\"slurmInfo\":\"JobId=\##(i) JobName=relax UserId=u(4711)\"}"##
        let threads = small ? "" : #",\"hwthreads\":[\#((0..<72).map(String.init).joined(separator: ","))]"#
        return #"job,function=start_job,hostname=fritzadm1,type=node,type-id=0 event="{\"jobId\":\#(i),\"user\":\"u\#(i % 50)\",\"project\":\"p\#(i % 9)\",\"cluster\":\"fritz\",\"partition\":\"main\",\"shared\":\"none\",\"walltime\":86400,\"numNodes\":1,\"numHwthreads\":72,\"monitoringStatus\":\#(noArchive ? 0 : 1),\"resources\":[{\"hostname\":\"f0\#(101 + i % 80)\"\#(threads)}]\#(meta),\"startTime\":\#(1_700_000_000 + i)}" \#(1_700_000_000 + i)000000000"#
    }

    func stop(_ i: Int) -> String {
        #"job,function=stop_job,hostname=fritzadm1,partition=main,type=node,type-id=0 event="{\"jobId\":\#(i),\"cluster\":\"fritz\",\"jobState\":\"completed\",\"stopTime\":\#(1_700_003_600 + i)}" \#(1_700_003_600 + i)000000000"#
    }
}

extension ClusterdConfig.ArchiveKind: ExpressibleByArgument {}
