import Archive
import Config
import BusTestSupport
import Foundation
import Health
import Intake
import Jobs
import Model
import Pipeline
import Testing

@Suite(.timeLimit(.minutes(3))) struct JobStageTests {
    static let start = #"job,function=start_job event="{\"jobId\":1403244,\"user\":\"u\",\"project\":\"p\",\"cluster\":\"fritz\",\"submitTime\":1608920000,\"requestedMemory\":4096,\"numNodes\":2,\"resources\":[{\"hostname\":\"f0101\",\"hwthreads\":[0,1]},{\"hostname\":\"f0102\"}],\"tags\":[{\"type\":\"app\",\"name\":\"vasp\"}],\"metaData\":{\"jobName\":\"x\"},\"startTime\":1608923076}" 1"#
    static let stop = #"job,function=stop_job event="{\"jobId\":1403244,\"cluster\":\"fritz\",\"jobState\":\"timeout\",\"stopTime\":1608926676}""#

    @Test func archiveEntryIsWrittenInTheV3LayoutAndTheJobIsMarkedArchived() throws {
        let env = try TestEnvironment()
        #expect(TestEnvironment.statuses(try env.send(Self.start)) == ["started"])
        #expect(TestEnvironment.statuses(try env.send(Self.stop)) == ["stopped"])
        let root = env.config.archivePath
        #expect(try String(contentsOfFile: "\(root)/version.txt", encoding: .utf8) == "3\n")
        #expect(FileManager.default.fileExists(atPath: "\(root)/fritz/cluster.json"))
        let meta = try JSONValue.parse(Array(try Data(contentsOf: URL(fileURLWithPath: "\(root)/fritz/1403/244/1608923076/meta.json"))))
        #expect(meta["jobState"] == .string("timeout"))
        #expect(meta["duration"] == .integer(3600))
        #expect(meta["subCluster"] == .string("main"))
        #expect(meta["monitoringStatus"] == .integer(3))
        #expect(meta["submitTime"] == .integer(1608920000))
        #expect(meta["requestedMemory"] == .integer(4096))
        let row = try env.query("SELECT monitoring_status, submit_time, requested_memory, job_state FROM job")
        #expect(row.first?.prefix(4) == ["3", "1608920000", "4096", "timeout"])
        let tags = try env.query("SELECT t.tag_type, t.tag_name, t.tag_scope FROM jobtag jt JOIN tag t ON t.id = jt.tag_id")
        #expect(tags.first?.prefix(3) == ["app", "vasp", "global"])
        // No leftover temporary files.
        let dir = try FileManager.default.contentsOfDirectory(atPath: "\(root)/fritz/1403/244/1608923076")
        #expect(dir == ["meta.json"])
    }

    @Test func monitoringStatusZeroIsNotArchived() throws {
        let env = try TestEnvironment()
        try env.send(#"job,function=start_job event="{\"jobId\":7,\"user\":\"u\",\"cluster\":\"fritz\",\"monitoringStatus\":0,\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1700000100}""#)
        try env.send(#"job,function=stop_job event="{\"jobId\":7,\"stopTime\":1700000200}""#)
        #expect(!FileManager.default.fileExists(atPath: "\(env.config.archivePath)/fritz/0/007/1700000100/meta.json"))
        #expect(try env.query("SELECT monitoring_status, job_state FROM job").first?.prefix(2) == ["0", "completed"])
    }

    @Test func archiveRetentionRemovesOldJobsButNotProtectedOnes() throws {
        let env = try TestEnvironment()
        for id in [501, 502, 503] {
            try env.send(#"job,function=start_job event="{\"jobId\":\#(id),\"user\":\"u\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1700001000}""#)
        }
        for id in [501, 502] { try env.send(#"job,function=stop_job event="{\"jobId\":\#(id),\"cluster\":\"fritz\",\"stopTime\":1700001100}""#) }
        let archive = try ArchiveWriter(root: env.config.archivePath)
        #expect(FileManager.default.fileExists(atPath: archive.directory(cluster: "fritz", jobId: 501, startTime: 1700001000) + "/meta.json"))
        #expect(try env.processor.stage.protect(jobId: 502, cluster: "fritz", startTime: nil, protected: true, by: "ops", reason: "audit", now: 1700002000) != nil)
        #expect(try env.processor.stage.protect(jobId: 999, cluster: "fritz", startTime: nil, protected: true, by: "ops", reason: "", now: 1700002000) == nil)
        // 501 ended long ago and goes; 502 is protected; 503 still runs.
        #expect(try env.processor.applyRetention(now: 1700001100 + 86_400 * 40, keep: .oneDay * 30) == 1)
        #expect(try env.query("SELECT job_id FROM job ORDER BY job_id").map { $0[0] } == ["502", "503"])
        #expect(!FileManager.default.fileExists(atPath: archive.directory(cluster: "fritz", jobId: 501, startTime: 1700001000)))
        // No empty directories are left behind (issue 22 #11): fritz/0/501 goes, fritz/0 stays for 502 and 503.
        #expect(!FileManager.default.fileExists(atPath: "\(env.config.archivePath)/fritz/0/501"))
        #expect(FileManager.default.fileExists(atPath: "\(env.config.archivePath)/fritz/0"))
        #expect(FileManager.default.fileExists(atPath: archive.directory(cluster: "fritz", jobId: 502, startTime: 1700001000) + "/meta.json"))
        // Lifting the protection lets it go too; 0 days keeps everything.
        #expect(try env.processor.applyRetention(now: 1700001100 + 86_400 * 40, keep: .zero) == 0)
        _ = try env.processor.stage.protect(jobId: 502, cluster: "fritz", startTime: 1700001000, protected: false, by: "ops", reason: "", now: 1700003000)
        #expect(try env.processor.applyRetention(now: 1700001100 + 86_400 * 40, keep: .oneDay * 30) == 1)
        #expect(!FileManager.default.fileExists(atPath: "\(env.config.archivePath)/fritz/0"))
        #expect(FileManager.default.fileExists(atPath: "\(env.config.archivePath)/fritz/cluster.json"))
    }

    @Test func heldStopExpiresIntoADeadLetter() throws {
        let env = try TestEnvironment { $0.jobs.heldStopTimeout = .seconds(60) }
        #expect(TestEnvironment.statuses(try env.send(#"job,function=stop_job event="{\"jobId\":9,\"stopTime\":1700000200}""#, now: 1700001000)) == ["held"])
        #expect(try env.processor.expireHeldStops(now: 1700001050, timeout: env.config.jobs.heldStopTimeout.wholeSeconds) == 0)
        #expect(try env.processor.expireHeldStops(now: 1700001061, timeout: env.config.jobs.heldStopTimeout.wholeSeconds) == 1)
        let letter = try #require(try env.deadLetters().last)
        #expect(letter["code"] == .string("held_stop_expired"))
        // Dead letters are pruned by age, per stage.
        #expect(try env.nodes.pruneDeadLetters(before: 1700002000) == 0)
        #expect(try env.processor.pruneDeadLetters(before: 1700001061) == 0)
        #expect(try env.processor.pruneDeadLetters(before: 1700001062) == 1)
        // The start now finds nothing waiting.
        let r = try env.send(#"job,function=start_job event="{\"jobId\":9,\"user\":\"u\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1700000100}""#)
        #expect(TestEnvironment.statuses(r) == ["started"])
    }

    @Test func redeliveryOfACommittedMessageIsRecognised() throws {
        let env = try TestEnvironment()
        let message = IncomingMessage(subject: "cc.job.event", data: Array(Self.start.utf8), messageID: "x", origin: "S:1", receivedAt: 1_800_000_000)
        #expect(try env.processor.process([message]) == [.applied(accepted: 1, rejected: 0)])
        #expect(try env.processor.process([message]) == [.alreadyApplied])
        #expect(try env.query("SELECT count(*) FROM job").first?.first == "1")
    }

    @Test func everyRejectedLineIsStoredAndCounted() throws {
        let env = try TestEnvironment()
        try env.send("cpu_load,hostname=f0101 value=1 1\njob,function=start_job event=1\n\n")
        #expect(try env.query("SELECT line, col, code FROM dead_letter ORDER BY id").map { Array($0.prefix(3)) } ==
                [["1", "1", "not_an_event"], ["2", "24", "not_an_event"]])
        #expect(env.counters["dead_letters.jobs.not_an_event"] == 2)
        try env.send("")
        #expect(env.counters["dead_letters.jobs.empty_message"] == 1)
    }

    @Test func nodeListsMatchAndExpandLikeSlurm() throws {
        let list = try NodeList("f[0101-0103,0201],login[1-2],x")
        #expect(list.expanded() == ["f0101", "f0102", "f0103", "f0201", "login1", "login2", "x"])
        #expect(list.contains("f0102") && list.contains("f0201") && list.contains("x"))
        #expect(!list.contains("f0104") && !list.contains("f101") && !list.contains("f01020"))
        #expect(throws: NodeList.ParseError.self) { try NodeList("f[01-2]") }
        #expect(throws: NodeList.ParseError.self) { try NodeList("f[0101") }
    }

    @Test func jsonFollowsGoDecodingRules() throws {
        // Case-insensitive keys, last duplicate wins, unknown key named, integers only.
        let v = try JSONValue.parse(#"{"JOBID": 5, "jobId": 6, "cluster": "fritz", "stopTime": 1700000010}"#)
        #expect(try JobStop(json: v).jobId == 6)
        #expect(throws: JobRejection.badField(path: "stoptime2", reason: "unknown key \"stoptime2\"", code: "unknown_key")) {
            try JobStop(json: try JSONValue.parse(#"{"jobId": 5, "stoptime2": 1}"#))
        }
        #expect(throws: JobRejection.self) { try JobStop(json: try JSONValue.parse(#"{"jobId": 5.5, "stopTime": 1}"#)) }
        #expect(try JSONValue.parse(#""\ud83d\ude00 \u00e9""#) == .string("😀 é"))
        #expect(throws: JSONParseError.self) { try JSONValue.parse("[1,]") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(String(repeating: "[", count: 200)) }
    }

    @Test func shippedConfigurationLoadsAndTyposAreReported() throws {
        let config = try ClusterdConfig.load(path: Repository.path("config/clusterd.yaml"))
        #expect(config.intake.jobSubject == "cc.job.event" && config.intake.stream == "CC_EVENTS")
        #expect(config.jobs.clusterFiles.count == 2)
        #expect(config.metrics.resolution == .seconds(60) && config.nodes.historyRetention == .seconds(720 * 3600))
        // The health files it names load (paths relative to the repository, where clusterd runs).
        let checks = try CheckLibrary(contentsOf: Repository.path(try #require(config.health.checks)))
        #expect(checks.checks.count >= 5)
        #expect(try Topology(contentsOf: Repository.path(try #require(config.health.topology))).hosts.count > 100)
        #expect(throws: ClusterdConfig.LoadError.self) { try ClusterdConfig.parse("intake:\n  bacth: 5\n", file: "x.yaml") }
        do {
            _ = try ClusterdConfig.parse("intake:\n  batch: many\n", file: "x.yaml")
            Issue.record("accepted a non-integer batch")
        } catch {
            #expect(error.description.contains("intake.batch"))
        }
    }

    /// Issue 21 #5: archive entries that failed on a full disk were never written, and the
    /// service looked healthy. On a 32 kB tmpfs that is full, five stopped jobs fail (status
    /// 2, each with a retry and its error); once there is room, the retry writes them all.
    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func archiveEntriesAreRetriedOnceTheFullDiskHasRoomAgain() throws {
        let env = try TestEnvironment()
        let mountPoint = "\(env.config.archivePath)/fritz/7"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try #require(try Self.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", mountPoint]) == 0)
        defer { _ = try? Self.run(["umount", mountPoint]) }
        let filler = "\(mountPoint)/filler"
        _ = FileManager.default.createFile(atPath: filler, contents: Data(repeating: 1, count: 32 * 1024))
        try fiveEntriesFailAndAreRetried(env, filler: filler, error: "No space left on device")
        #expect(FileManager.default.fileExists(atPath: "\(mountPoint)/001/1700000000/meta.json"))
    }

    /// The same with the SQLite archive (`storage.archive_kind: sqlite`) on a full disk: its
    /// transaction fails, so every entry of the group does (status 2, a retry, SQLite's error);
    /// once there is room the retry writes them as rows.
    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func sqliteArchiveEntriesAreRetriedOnceTheFullDiskHasRoomAgain() throws {
        let mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-full-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mountPoint) }
        try #require(try Self.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mountPoint]) == 0)
        defer { _ = try? Self.run(["umount", mountPoint]) }
        do {  // the archive's connections closed before the unmount
            let env = try TestEnvironment {
                $0.storage.archiveKind = .sqlite
                $0.storage.archiveDatabase = "\(mountPoint)/job-archive.db"
            }
            // The schema is there; the rest of the file system is taken.
            let filler = "\(mountPoint)/filler"
            _ = FileManager.default.createFile(atPath: filler, contents: nil)
            let handle = try #require(FileHandle(forWritingAtPath: filler))
            while (try? handle.write(contentsOf: Data(repeating: 1, count: 4096))) != nil {}
            try handle.close()
            try fiveEntriesFailAndAreRetried(env, filler: filler, error: "full")
            let rows = try ArchiveDatabase(path: "\(mountPoint)/job-archive.db", readOnly: true).count(cluster: "fritz")
            #expect(rows.jobs == 5)
        }
    }

    /// Runs a command to its end (mount, umount); its exit status.
    static func run(_ arguments: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        try ChildProcess.run(p)
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// Five jobs stopped while `filler` fills the archive's disk: each entry fails (status 2,
    /// a retry, `error` in its message). With `filler` gone, a retry before its time writes
    /// nothing and one at its time all five.
    func fiveEntriesFailAndAreRetried(_ env: TestEnvironment, filler: String, error: String) throws {
        for id in 7001...7005 {
            try env.send(#"job,function=start_job event="{\"jobId\":\#(id),\"user\":\"u\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1700000000}""#)
            try env.send(#"job,function=stop_job event="{\"jobId\":\#(id),\"cluster\":\"fritz\",\"stopTime\":1700000600}""#)
        }
        let failures = try env.processor.stage.archiveFailures()
        #expect(failures.count == 5)
        #expect(failures.lastError?.contains(error) == true, "\(failures.lastError ?? "")")
        #expect(try env.query("SELECT count(*) FROM job WHERE monitoring_status = 2").first?.first == "5")
        try FileManager.default.removeItem(atPath: filler)
        let now = Int64(Date().timeIntervalSince1970)
        #expect(try env.processor.archivePending(now: now) == 0)
        #expect(try env.processor.archivePending(now: now + 3600) == 5)
        #expect(try env.processor.stage.archiveFailures().count == 0)
        #expect(try env.query("SELECT count(*) FROM job WHERE monitoring_status = 3").first?.first == "5")
    }

    /// One batch holding two entries of the same job directory (a job queued twice): both
    /// are written (each had its own temporary file), the later one stays. Before, the second
    /// rename found its temporary file gone and the job was marked failed (a replay flake).
    @Test func twoEntriesOfOneDirectoryInABatchAreBothWritten() throws {
        let env = try TestEnvironment()
        let start = try JobStart(json: JSONValue.parse(Array(#"{"jobId":77,"user":"u","cluster":"fritz","numNodes":1,"resources":[{"hostname":"f0101"}],"startTime":1700000000}"#.utf8)))
        let job = JobRecord(id: 1, start: start, subCluster: "main", state: .completed, duration: 60, monitoringStatus: 3)
        let archive = try ArchiveWriter(root: env.config.archivePath)
        let results = archive.write([ArchiveWriter.Entry(job: job, files: [("meta.json", Array("first\n".utf8))]),
                                     ArchiveWriter.Entry(job: job, files: [("meta.json", Array("second\n".utf8))])])
        #expect(results.allSatisfy { if case .success = $0 { true } else { false } }, "\(results)")
        let dir = archive.directory(cluster: "fritz", jobId: 77, startTime: 1700000000)
        #expect(FileManager.default.contents(atPath: dir + "/meta.json") == Data("second\n".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["meta.json"])
    }

    /// A new entry's files go straight into the directory staging has just made (nothing
    /// there to keep; the job counts as archived only after the commit's sync). An entry
    /// whose directory exists — a rewrite, or one a crash left half-done — is written beside
    /// the old file and renamed over it at the commit: until then the old file is untouched.
    @Test func aNewEntryIsWrittenInPlaceAndARewriteReplacesTheOldFileOnlyAtItsCommit() throws {
        let env = try TestEnvironment()
        let start = try JobStart(json: JSONValue.parse(Array(#"{"jobId":78,"user":"u","cluster":"fritz","numNodes":1,"resources":[{"hostname":"f0101"}],"startTime":1700000000}"#.utf8)))
        let job = JobRecord(id: 1, start: start, subCluster: "main", state: .completed, duration: 60, monitoringStatus: 3)
        let archive = try ArchiveWriter(root: env.config.archivePath)
        let dir = archive.directory(cluster: "fritz", jobId: 78, startTime: 1700000000)
        let first = archive.stage([ArchiveWriter.Entry(job: job, files: [("meta.json", Array("first\n".utf8))])], batch: 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["meta.json"])
        #expect(archive.commit(first).allSatisfy { $0.isSuccess })
        #expect(FileManager.default.contents(atPath: dir + "/meta.json") == Data("first\n".utf8))

        let second = archive.stage([ArchiveWriter.Entry(job: job, files: [("meta.json", Array("second\n".utf8))])], batch: 2)
        #expect(FileManager.default.contents(atPath: dir + "/meta.json") == Data("first\n".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 2)  // the old file and the new one beside it
        #expect(archive.commit(second).allSatisfy { $0.isSuccess })
        #expect(FileManager.default.contents(atPath: dir + "/meta.json") == Data("second\n".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["meta.json"])
    }

    /// Events run without a savepoint of their own on a batch's first try. One that fails
    /// after it changed rows (here a trigger refuses its event row after its job row went in)
    /// has the batch redone with a savepoint per event: it alone is undone and dead-lettered,
    /// the others apply, and no half event stays.
    @Test func anEventThatFailsHalfwayIsUndoneAloneByARedoOfItsBatch() throws {
        let env = try TestEnvironment()
        try env.processor.database.execute("""
            CREATE TEMP TRIGGER refuse_4242 BEFORE INSERT ON clusterd_job_event
            WHEN (SELECT job_id FROM job WHERE id = NEW.job) = 4242 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
            """)
        let lines = (4241...4243).map { id in
            #"job,function=start_job event="{\"jobId\":\#(id),\"user\":\"u\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1700000000}""#
        }
        let dispositions = try env.processor.process([IncomingMessage(subject: "cc.job.event", data: Array(lines.joined(separator: "\n").utf8), messageID: "m-half",
                                                                      origin: "TEST:half", receivedAt: 1_800_000_000)])
        #expect(dispositions.count == 1)
        #expect(try env.query("SELECT group_concat(job_id) FROM (SELECT job_id FROM job ORDER BY job_id)")[0][0] == "4241,4243")
        #expect(try env.query("SELECT count(*) FROM job j LEFT JOIN clusterd_job_event e ON e.job = j.id WHERE e.job IS NULL")[0][0] == "0")
        let letters = try env.deadLetters()
        #expect(letters.count == 1 && letters.first?["line"] == .integer(2), "\(letters)")
        #expect(letters.first?["reason"]?.stringValue?.contains("refused by the test") == true, "\(letters)")
        #expect(env.counters["intake.batches_redone"] == 1)
    }

    /// When the archive falls behind, stops beyond the remembered ones wait in the table only
    /// (memory stays bounded) and are archived from it — none is left out.
    @Test func stopsBeyondTheRememberedOnesAreArchivedFromTheTable() throws {
        let env = try TestEnvironment()
        env.processor.rememberedStops = 3
        var lines: [String] = []
        for id in 8001...8010 {
            lines.append(#"job,function=start_job event="{\"jobId\":\#(id),\"user\":\"u\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1700000000}""#)
            lines.append(#"job,function=stop_job event="{\"jobId\":\#(id),\"cluster\":\"fritz\",\"stopTime\":1700000600}""#)
        }
        // One batch stops all ten: three are remembered, seven wait in the table.
        _ = try env.processor.process([IncomingMessage(subject: "cc.job.event", data: Array(lines.joined(separator: "\n").utf8), messageID: "m-all",
                                                       origin: "TEST:all", receivedAt: 1_800_000_000)])
        #expect(try env.processor.archivePending(now: 1_800_000_000) == 10)
        #expect(try env.query("SELECT count(*) FROM job WHERE monitoring_status = 3") == [["10", "", "", "", "", "", "", ""]])
        let archive = try ArchiveWriter(root: env.config.archivePath)
        #expect((8001...8010).allSatisfy { FileManager.default.fileExists(atPath: archive.directory(cluster: "fritz", jobId: Int64($0), startTime: 1700000000) + "/meta.json") })
    }

    /// Issue 22 #1: a job without metric samples got `statistics: {}`, which ClusterCockpit's
    /// job-meta schema refuses. It gets zero statistics for every metric of its subcluster
    /// (and no data.json), and validates.
    @Test func aJobWithoutMetricsGetsASchemaValidMetaJSON() throws {
        let env = try TestEnvironment()
        try env.send(#"job,function=start_job event="{\"jobId\":8001,\"user\":\"u\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1700000000}""#)
        try env.send(#"job,function=stop_job event="{\"jobId\":8001,\"cluster\":\"fritz\",\"stopTime\":1700000600}""#)
        let dir = try ArchiveWriter(root: env.config.archivePath).directory(cluster: "fritz", jobId: 8001, startTime: 1700000000)
        #expect(try HealthBusTests.validate("meta", dir + "/meta.json") == [])
        #expect(!FileManager.default.fileExists(atPath: dir + "/data.json"))
        let meta = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: dir + "/meta.json")).map { $0 })
        #expect(meta["statistics"]?["cpu_load"]?["avg"] == .integer(0))
    }

    /// A stop naming a start time no stored run has (the scheduler's start moved between
    /// prolog and epilog): it still ends the running job of that id, and a repeat of it is
    /// recognised instead of being held for a start that never comes.
    @Test func aStopWithAnotherStartTimeEndsTheRunningJob() throws {
        let env = try TestEnvironment()
        try env.send(#"job,function=start_job event="{\"jobId\":8101,\"user\":\"u\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1700000000}""#)
        let stop = #"job,function=stop_job event="{\"jobId\":8101,\"cluster\":\"fritz\",\"startTime\":1700000007,\"jobState\":\"cancelled\",\"stopTime\":1700000009}""#
        #expect(TestEnvironment.statuses(try env.send(stop)) == ["stopped"])
        #expect(try env.query("SELECT job_state, duration FROM job WHERE job_id = 8101").first.map { Array($0.prefix(2)) } == ["cancelled", "9"])
        #expect(TestEnvironment.statuses(try env.send(stop)) == ["duplicate"])
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { true } else { false } }
}
