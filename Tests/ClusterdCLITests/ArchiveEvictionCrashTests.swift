import Bus
import BusTestSupport
import Foundation
import Model
import Archive
import Processing
import Store
import Testing

/// Issue 20 #1: a `clusterd run` that dies in the middle of an archive eviction — after the
/// batch's files are gone, before their rows are — leaves archive and job table disagreeing;
/// the next start finishes the eviction, so they agree again and every eviction is recorded.
@Suite(.serialized, .timeLimit(.minutes(2))) final class ArchiveEvictionCrashTests: BusSuite {
    let fixture: BusFixture

    init() throws { fixture = try BusFixture("clusterd-evict-crash") }

    func configure(quotaBytes: Int64, lowWatermark: Double = 60) throws -> URL {
        let config = directory.appendingPathComponent("clusterd.yaml")
        try """
            nats: {servers: ["\(server.url)"]}
            storage: {data_dir: "\(directory.appendingPathComponent("data").path)"}
            jobs:
              cluster_files: ["\(CLIRunner.packageRoot.appendingPathComponent("config/clusters/fritz/cluster.json").path)"]
              archive_quota_bytes: \(quotaBytes)
              archive_quota_interval_seconds: 0
              archive_low_watermark_percent: \(lowWatermark)
            observability: {listen: ""}
            log_level: warning
            """.write(to: config, atomically: true, encoding: .utf8)
        return config
    }

    /// Waits until a `clusterd run` answers (its streams exist by then).
    func answering() async throws {
        try await eventually("clusterd answers", timeout: 30) {
            (try? client.request(BusMessage(subject: "clusterd.api.jobs.list", data: Array("{}".utf8)), timeout: .seconds(1))) != nil
        }
    }

    @Test func aCrashMidEvictionIsFinishedAtTheNextStart() async throws {
        let log = directory.appendingPathComponent("clusterd.log")
        var run = try CLIRunner.launch(["run", "--config", try configure(quotaBytes: 0).path], log: log)
        defer { if run.isRunning { run.terminate(); run.waitUntilExit() } }
        try await answering()
        let js = try JetStream(client)
        let t0 = Int(Date().timeIntervalSince1970) - 86_400
        for id in 1...10 {
            let events = #"""
                job,function=start_job event="{\"jobId\":\#(9700 + id),\"user\":\"u\#(id)\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":\#(t0 + id * 600)}" 1
                job,function=stop_job event="{\"jobId\":\#(9700 + id),\"cluster\":\"fritz\",\"jobState\":\"completed\",\"stopTime\":\#(t0 + id * 600 + 300)}" 1
                """#
            _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(events.utf8)), messageID: "evict-crash-\(id)")
        }
        let path = directory.appendingPathComponent("data/clusterd.db").path
        func count(_ sql: String) -> Int64 {
            guard let db = try? Database(path: path, readOnly: true) else { return -1 }
            return (try? db.prepare(sql).first { $0.int(0) }) ?? -1
        }
        try await eventually("ten jobs archived", timeout: 30) { count("SELECT count(*) FROM job WHERE monitoring_status = 3") == 10 }
        run.terminate()
        run.waitUntilExit()

        // A budget of what the archive holds (100 %, over the 95 % mark), a low mark that half
        // the jobs' bytes reach (cluster.json counts too), and a crash armed between the
        // removal of the batch's files and of its rows.
        let root = directory.appendingPathComponent("data/archive").path
        let archive = try ArchiveWriter(root: root)
        func dir(_ id: Int) -> String { archive.directory(cluster: "fritz", jobId: Int64(9700 + id), startTime: Int64(t0 + id * 600)) }
        let used = ArchiveWriter.size(of: root), jobBytes = (1...10).map { ArchiveWriter.size(of: dir($0)) }.reduce(0, +)
        let low = 100 * Double(used - jobBytes / 2) / Double(used)
        let config = try configure(quotaBytes: used, lowWatermark: low)
        run = try CLIRunner.launch(["run", "--config", config.path], log: log, environment: ["CLUSTERD_CRASH_AT": "archive.evict.files-removed"])
        try await answering()
        let request = BusMessage(subject: "clusterd.admin.archive.evict", headers: ["Clusterd-Actor": ["ops"]], data: Array("{}".utf8))
        #expect(throws: (any Error).self, "the process dies before it answers") { try client.request(request, timeout: .seconds(5)) }
        run.waitUntilExit()
        #expect(run.terminationStatus == 137)
        // Mid-eviction: recorded pending, some jobs' files gone, their rows still there.
        let pending = count("SELECT count(*) FROM clusterd_archive_eviction WHERE state = 'pending'")
        #expect((3...7).contains(pending) && count("SELECT count(*) FROM job") == 10, "\(pending) pending")
        func archived(_ id: Int) -> Bool { FileManager.default.fileExists(atPath: dir(id)) }
        #expect((1...10).filter { !archived($0) }.count == Int(pending))

        // The next start finishes it: the rows of the evicted jobs go, the records are done.
        run = try CLIRunner.launch(["run", "--config", config.path], log: log)
        try await eventually("the eviction finished", timeout: 30) {
            count("SELECT count(*) FROM clusterd_archive_eviction WHERE state = 'pending'") == 0 && count("SELECT count(*) FROM job") == 10 - pending
        }
        let db = try Database(path: path, readOnly: true)
        let rows = Set(try db.prepare("SELECT job_id FROM job").rows { Int($0.int(0)) - 9700 })
        let evicted = try db.prepare("SELECT job_id FROM clusterd_archive_eviction WHERE state = 'done' ORDER BY id").rows { Int($0.int(0)) - 9700 }
        // Archive and table agree: a job has a row exactly when it has its files; the evicted
        // are the oldest, each recorded once.
        for id in 1...10 { #expect(rows.contains(id) == archived(id), "job \(9700 + id)") }
        #expect(evicted == (1...10).filter { $0 <= pending } && rows == Set((1...10).filter { $0 > pending }))
        #expect(Double(ArchiveWriter.size(of: root)) <= Double(used) * low / 100)
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(text.contains("finished archive evictions a stop had interrupted"), "\(text)")
    }
}
