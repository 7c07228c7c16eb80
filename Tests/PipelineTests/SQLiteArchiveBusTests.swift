import Archive
import Bus
import BusTestSupport
import Config
import Foundation
import Model
import Pipeline
import Store
import Testing

/// `storage.archive_kind: sqlite` through a running service and a real nats-server: every
/// stopped job's entry is a row of cc-backend's SQLite archive (its tables, version 3, the
/// clusters' cluster.json), announced once with the file it is in; a backlog left by a crash is
/// written at the next start; retention and the disk budget remove rows as they remove
/// directories in the tree.
@Suite(.serialized, .timeLimit(.minutes(3))) final class SQLiteArchiveBusTests: BusSuite {
    let fixture: BusFixture
    /// More than one of the worker's batches (256 jobs).
    let jobs = 300

    init() throws { fixture = try BusFixture("clusterd-sqlite-archive") }

    var archivePath: String { directory.appendingPathComponent("data/job-archive.db").path }

    func startService(_ configure: (inout ClusterdConfig) -> Void = { _ in }) throws -> ClusterdService {
        try ClusterdService.started(server: server.url, directory: directory.appendingPathComponent("data")) {
            $0.storage.archiveKind = .sqlite
            configure(&$0)
        }.0
    }

    func archive() throws -> Database { try Database(path: archivePath, readOnly: true) }

    func count(_ db: Database, _ sql: String) -> Int64 { (try? db.prepare(sql).first { $0.int(0) }) ?? -1 }

    func publish(id: Int, start: Int, user: String = "u") throws {
        let events = #"""
            job,function=start_job event="{\"jobId\":\#(id),\"user\":\"\#(user)\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":\#(start)}" 1
            job,function=stop_job event="{\"jobId\":\#(id),\"cluster\":\"fritz\",\"jobState\":\"completed\",\"stopTime\":\#(start + 300)}" 1
            """#
        _ = try JetStream(client).publish(BusMessage(subject: "cc.job.event", data: Array(events.utf8)), messageID: "sqlite-archive-\(id)-\(start)")
    }

    @Test func everyEntryIsARowCcBackendReadsAnnouncedOnceAndABacklogIsWrittenAtStart() async throws {
        let outcomes = ServiceBusTests.Collector()
        let sub = try client.subscribe("clusterd.result.archive.>") { outcomes.add($0) }
        try client.flush()
        var service = try startService()
        for id in 1...jobs { try publish(id: id, start: 1_700_000_000) }
        let seen = try await outcomes.wait(count: jobs, timeout: 120)
        service.stop()
        #expect(seen.count == jobs && Set(seen.map(\.subject)).count == jobs, "\(seen.count) outcomes")
        let announced = try JSONValue.parse(try #require(seen.first).data)
        #expect(announced["ok"] == .bool(true) && announced["database"] == .string(archivePath) && announced["directory"] == nil, "\(announced)")
        #expect(announced["files"] == .array([.string("meta.json")]))

        let db = try archive()
        #expect(count(db, "SELECT count(*) FROM jobs") == Int64(jobs))
        #expect(count(db, "SELECT count(DISTINCT job_id) FROM jobs WHERE cluster = 'fritz' AND start_time = 1700000000 AND data_json IS NULL") == Int64(jobs))
        #expect(try db.prepare("SELECT value FROM metadata WHERE key = 'version'").first { $0.text(0) } == "3")
        let clusterJSON = try Data(contentsOf: URL(fileURLWithPath: Repository.path("config/clusters/fritz/cluster.json")))
        #expect(try db.prepare("SELECT config_json FROM clusters WHERE name = 'fritz'").first { $0.blob(0) } == Array(clusterJSON))
        // meta.json's bytes as the tree would hold them: one JSON document and a newline, valid.
        let meta = try #require(try db.prepare("SELECT meta_json FROM jobs WHERE job_id = 7").first { $0.blob(0) })
        let parsed = try JSONValue.parse(meta)
        #expect(meta.last == UInt8(ascii: "\n") && parsed["jobId"] == .integer(7))
        let file = directory.appendingPathComponent("meta-7.json").path
        FileManager.default.createFile(atPath: file, contents: Data(meta))
        #expect(try HealthBusTests.validate("meta", file) == [])
        // No directory per job in the archive root, which keeps version.txt and cluster.json.
        let root = directory.appendingPathComponent("data/archive").path
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(root)/fritz") == ["cluster.json"])
        #expect(FileManager.default.fileExists(atPath: "\(root)/version.txt"))

        // As after a crash between the stops' commit and their entries: all pending, no rows.
        let writable = try Database(path: archivePath)
        try writable.execute("DELETE FROM jobs")
        try Database(path: directory.appendingPathComponent("data/clusterd.db").path).execute("UPDATE job SET monitoring_status = 1")
        service = try startService()
        defer { service.stop() }
        try await eventually("the backlog written", timeout: 60) { count(db, "SELECT count(*) FROM jobs") == Int64(jobs) }
        let table = try Database(path: directory.appendingPathComponent("data/clusterd.db").path, readOnly: true)
        try await eventually("every job recorded archived") { count(table, "SELECT count(*) FROM job WHERE monitoring_status = 3") == Int64(jobs) }
        _ = sub
    }

    @Test func retentionAndTheDiskBudgetRemoveRows() async throws {
        let now = Int(Date().timeIntervalSince1970)
        var service = try startService()
        try publish(id: 9001, start: now - 40 * 86_400)
        for id in 1...6 { try publish(id: 9500 + id, start: now - 86_400 + id * 600) }
        let db = try archive()
        try await eventually("seven entries") { count(db, "SELECT count(*) FROM jobs") == 7 }
        service.stop()

        service = try startService { $0.jobs.archiveRetention = .oneDay * 30 }
        try await eventually("retention of job 9001") { count(db, "SELECT count(*) FROM jobs WHERE job_id = 9001") == 0 }
        let table = try Database(path: directory.appendingPathComponent("data/clusterd.db").path, readOnly: true)
        try await eventually("its row in the job table") { count(table, "SELECT count(*) FROM job WHERE job_id = 9001") == 0 }
        #expect(count(db, "SELECT count(*) FROM jobs") == 6)
        service.stop()

        // A budget of what the archive holds now; the low mark where half the entries' bytes go.
        let writer = try ArchiveWriter(root: directory.appendingPathComponent("data/archive").path, database: archivePath)
        let used = writer.totalBytes()
        let entry = writer.bytes(of: ArchiveWriter.JobKey(cluster: "fritz", jobId: 9501, startTime: Int64(now - 86_400 + 600)))
        #expect(entry > 0 && used > 6 * entry, "\(entry) of \(used)")
        let low = 100 * Double(used - 3 * entry) / Double(used) + 0.01
        service = try startService {
            $0.jobs.archiveQuotaBytes = used
            $0.jobs.archiveLowWatermarkPercent = low
            $0.jobs.archiveQuotaInterval = .zero
        }
        defer { service.stop() }
        let done = try JSONValue.parse(try client.request(BusMessage(subject: "clusterd.admin.archive.evict", headers: ["Clusterd-Actor": ["ops"]],
                                                                     data: Array(#"{"dryRun":false}"#.utf8)), timeout: .seconds(10)).data)
        guard case .array(let evicted)? = done["evicted"] else { throw TestFailure("\(done)") }
        #expect(evicted.compactMap { $0["jobId"] } == [.integer(9501), .integer(9502), .integer(9503)], "\(done)")
        #expect(try db.prepare("SELECT job_id FROM jobs ORDER BY job_id").rows { $0.int(0) } == [9504, 9505, 9506])
        #expect(count(table, "SELECT count(*) FROM job") == 3)
        #expect(writer.totalBytes() <= Int64(Double(used) * low / 100))
    }

    /// A cluster whose cluster.json is only in the file's `clusters` table (imported there,
    /// or written by cc-backend) is known: its jobs are archived, not dead-lettered.
    @Test func aClusterKnownOnlyToTheArchiveFileTakesJobs() async throws {
        let fritz = try String(contentsOfFile: Repository.path("config/clusters/fritz/cluster.json"), encoding: .utf8)
        let emmy = Array(fritz.replacingOccurrences(of: #""name": "fritz""#, with: #""name": "emmy""#).utf8)
        #expect(emmy != Array(fritz.utf8), "the name was replaced")
        try ArchiveDatabase(path: archivePath).install(cluster: "emmy", document: emmy, now: 1)
        let service = try startService()
        defer { service.stop() }
        let events = #"""
            job,function=start_job event="{\"jobId\":77,\"user\":\"u\",\"project\":\"p\",\"cluster\":\"emmy\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1700000000}" 1
            job,function=stop_job event="{\"jobId\":77,\"cluster\":\"emmy\",\"stopTime\":1700000600}" 1
            """#
        _ = try JetStream(client).publish(BusMessage(subject: "cc.job.event", data: Array(events.utf8)), messageID: "emmy-77")
        let db = try archive()
        try await eventually("job 77 of emmy archived") { count(db, "SELECT count(*) FROM jobs WHERE cluster = 'emmy' AND job_id = 77") == 1 }
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("data/archive/emmy").path))
    }

    /// Evicting rows frees pages inside the file, not on its file system: they count as free
    /// space for a budget in percent, or every pass would find the archive as full and evict again.
    @Test func removedEntriesCountAsReusableSpace() throws {
        let database = try ArchiveDatabase(path: archivePath)
        let rows = (1...200).map { ArchiveDatabase.Row(cluster: "fritz", jobId: Int64($0), startTime: 1_700_000_000,
                                                       meta: Array(repeating: UInt8(ascii: "x"), count: 10_000), data: nil, compressed: false) }
        try database.write(rows, now: 1)
        #expect(try database.reusableBytes() < 100_000)
        try database.remove((1...100).map { ArchiveWriter.JobKey(cluster: "fritz", jobId: Int64($0), startTime: 1_700_000_000) })
        let reusable = try database.reusableBytes()
        #expect(reusable >= 100 * 10_000, "\(reusable)")
        #expect(try database.totalBytes() == 100 * 10_000)
        try database.write(Array(rows.prefix(100)), now: 2)
        #expect(try database.reusableBytes() < 100_000, "new entries fill the free pages first")
    }
}
