import Archive
import Bus
import BusTestSupport
import Config
import Fleet
import Foundation
import Jobs
import Logging
import Model
import Pipeline
import Processing
import Store
import Synchronization
import Testing
import Threads

/// Issue 22 #1, #9, #11 and #14 through a running service and a real nats-server: archive
/// entries of jobs without metrics validate, sinfo short forms answer state queries, archive
/// retention leaves no empty directories, fleet check history is pruned.
@Suite(.serialized, .timeLimit(.minutes(3))) final class HousekeepingBusTests: BusSuite {
    let fixture: BusFixture

    init() throws { fixture = try BusFixture("clusterd-housekeeping") }

    func startService(clock: any SchedulerClock = SystemClock(), _ configure: (inout ClusterdConfig) -> Void = { _ in }) throws -> ClusterdService {
        var config = ClusterdConfig()
        config.nats.servers = [server.url]
        config.storage.dataDir = directory.appendingPathComponent("data").path
        config.jobs.clusterFiles = [Repository.path("config/clusters/fritz/cluster.json")]
        config.observability.listen = ""
        configure(&config)
        var logger = Logger(label: "housekeeping-test")
        logger.logLevel = .critical
        let service = ClusterdService(config: config, logger: logger, clock: clock)
        try service.start()
        return service
    }

    func ask(_ subject: String, _ body: String) throws -> JSONValue {
        try JSONValue.parse(try client.request(BusMessage(subject: subject, data: Array(body.utf8)), timeout: .seconds(10)).data)
    }

    /// #1 and #11: a job without samples gets a schema-valid meta.json; 40 days later (a
    /// restart with retention on runs it at once) it goes with its empty parent directory, while the
    /// shared one stays for the recent job.
    @Test func aJobWithoutMetricsIsArchivedSchemaValidAndRetentionLeavesNoEmptyDirectory() async throws {
        let now = Int(Date().timeIntervalSince1970)
        let old = now - 40 * 86_400, recent = now - 600
        let js = try JetStream(client)
        // Retention off in the first run: its hourly pass runs at start and, on a loaded
        // machine, could come after job 9001 is archived.
        var service = try startService()
        for (id, start) in [(9001, old), (9002, recent)] {
            let events = #"""
                job,function=start_job event="{\"jobId\":\#(id),\"user\":\"u\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":\#(start)}" 1
                job,function=stop_job event="{\"jobId\":\#(id),\"cluster\":\"fritz\",\"jobState\":\"completed\",\"stopTime\":\#(start + 300)}" 1
                """#
            _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(events.utf8)), messageID: "housekeeping-\(id)")
        }
        let archive = try ArchiveWriter(root: directory.appendingPathComponent("data/archive").path)
        let oldDir = archive.directory(cluster: "fritz", jobId: 9001, startTime: Int64(old))
        let recentDir = archive.directory(cluster: "fritz", jobId: 9002, startTime: Int64(recent))
        try await eventually("both archive entries") {
            FileManager.default.fileExists(atPath: oldDir + "/meta.json") && FileManager.default.fileExists(atPath: recentDir + "/meta.json")
        }
        #expect(try HealthBusTests.validate("meta", recentDir + "/meta.json") == [])
        #expect(!FileManager.default.fileExists(atPath: recentDir + "/data.json"))
        service.stop()
        service = try startService { $0.jobs.archiveRetention = .oneDay * 30 }
        defer { service.stop() }
        let oldParent = URL(fileURLWithPath: oldDir).deletingLastPathComponent().path       // fritz/9/1
        // Retention removes the files first, then the rows (a crash between leaves rows whose
        // removal is retried, never orphaned files): the list is asked until the row is gone.
        func listed() throws -> [JSONValue] {
            let jobs = try ask("clusterd.api.jobs.list", #"{"cluster":"fritz"}"#)
            guard case .array(let listed)? = jobs["jobs"] else { throw TestFailure("no jobs in \(jobs)") }
            return listed.compactMap { $0["jobId"] }
        }
        try await eventually("retention of job 9001") { !FileManager.default.fileExists(atPath: oldParent) && (try? listed()) == [.integer(9002)] }
        #expect(FileManager.default.fileExists(atPath: recentDir + "/meta.json"))
        #expect(try listed() == [.integer(9002)])
    }

    /// #9: `alloc$`, `mix*`, `idle~` are allocated, mixed and idle for `nodes.list`.
    @Test func sinfoShortFormsAnswerTheStateQuery() async throws {
        let service = try startService()
        defer { service.stop() }
        let body = #"nodestate event="{\"cluster\":\"fritz\",\"nodes\":[{\"hostname\":\"f0101\",\"states\":[\"alloc$\"]},{\"hostname\":\"f0102\",\"states\":[\"mix*\"]},{\"hostname\":\"f0103\",\"states\":[\"idle~\"]}]}" 1"#
        _ = try JetStream(client).publish(BusMessage(subject: "cc.node.state", data: Array(body.utf8)), messageID: "short-forms")
        func hosts(_ state: String) throws -> [String] {
            guard case .array(let nodes)? = try ask("clusterd.api.nodes.list", #"{"cluster":"fritz","state":"\#(state)"}"#)["nodes"] else { return [] }
            return nodes.compactMap { $0["hostname"]?.stringValue }
        }
        try await eventually("the node states") { try hosts("idle") == ["f0103"] }
        #expect(try hosts("allocated") == ["f0101"])
        #expect(try hosts("mixed") == ["f0102"])
    }

    /// #14: health checks older than `fleet.check_retention_days` are pruned by the running
    /// service; each server's newest check stays.
    @Test func fleetCheckHistoryIsPrunedByTheRunningService() async throws {
        var service = try startService()
        let registered = try JSONValue.parse(try client.request(BusMessage(subject: "fleet.acme.api.register",
                                                                           data: Array(#"{"name":"web1"}"#.utf8)), timeout: .seconds(10)).data)
        let id = try #require(registered["server"]?["id"]?.stringValue, "\(registered)")
        service.stop()
        // A server watched for two months: checks from 60, 59 and 58 days ago.
        let db = try Database(path: directory.appendingPathComponent("data/clusterd.db").path, busyTimeoutMilliseconds: 5000)
        let now = Int64(Date().timeIntervalSince1970)
        for days in [60, 59, 58] {
            try db.prepare("INSERT INTO fleet_health_check (server_id, at, status) VALUES (?, ?, 'healthy')").run([.text(id), .integer(now - Int64(days) * 86_400)])
        }
        service = try startService { $0.fleet.checkRetention = .oneDay * 30 }
        defer { service.stop() }
        try await eventually("the pruning") {
            try db.prepare("SELECT count(*) FROM fleet_health_check").first { $0.int(0) } == 1
        }
        #expect(try db.prepare("SELECT at FROM fleet_health_check").first { $0.int(0) } == now - 58 * 86_400)
    }

    /// Issue 20 #1: above the archive's disk budget, finished unprotected jobs go oldest first
    /// down to the low watermark; protected jobs and kept users stay; a dry run lists and
    /// touches nothing; each eviction is recorded.
    @Test func anArchiveOverItsBudgetEvictsOldestUnprotectedJobsToTheLowWatermark() async throws {
        let js = try JetStream(client)
        var service = try startService()
        let t0 = Int(Date().timeIntervalSince1970) - 86_400
        for id in 1...10 {
            let user = id == 2 ? "keep" : "u\(id)"
            let events = #"""
                job,function=start_job event="{\"jobId\":\#(9500 + id),\"user\":\"\#(user)\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":\#(t0 + id * 600)}" 1
                job,function=stop_job event="{\"jobId\":\#(9500 + id),\"cluster\":\"fritz\",\"jobState\":\"completed\",\"stopTime\":\#(t0 + id * 600 + 300)}" 1
                """#
            _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(events.utf8)), messageID: "quota-\(id)")
        }
        let db = try Database(path: directory.appendingPathComponent("data/clusterd.db").path, readOnly: true)
        func count(_ sql: String) -> Int64 { (try? db.prepare(sql).first { $0.int(0) }) ?? -1 }
        try await eventually("ten jobs archived") { count("SELECT count(*) FROM job WHERE monitoring_status = 3") == 10 }
        let protected = try client.request(BusMessage(subject: "clusterd.admin.jobs.protect", data: Array(#"{"jobId":9501,"cluster":"fritz","by":"ops","reason":"paper"}"#.utf8)))
        #expect(protected.header("Nats-Service-Error") == nil)
        service.stop()
        // A budget of exactly what the archive holds now: 100 %, over the 95 % mark.
        let root = directory.appendingPathComponent("data/archive").path
        let used = ArchiveWriter.size(of: root)
        let archive = try ArchiveWriter(root: root)
        func dir(_ id: Int) -> String { archive.directory(cluster: "fritz", jobId: Int64(9500 + id), startTime: Int64(t0 + id * 600)) }
        // The low mark where half the jobs' bytes are gone (cluster.json counts too, and is most of it).
        let low = 100 * Double(used - (1...10).map { ArchiveWriter.size(of: dir($0)) }.reduce(0, +) / 2) / Double(used)
        let lowBytes = Int64(Double(used) * low / 100)
        service = try startService {
            $0.jobs.archiveQuotaBytes = used
            $0.jobs.archiveLowWatermarkPercent = low
            $0.jobs.archiveKeepUsers = ["keep"]
            $0.jobs.archiveQuotaInterval = .zero  // on request only: the dry run first
        }
        defer { service.stop() }
        // Expected: jobs 3, 4, … oldest first (1 protected, 2 kept) until at most the low mark remains.
        var expected: [Int64] = [], freed: Int64 = 0
        for id in 3...10 where used - freed > lowBytes {
            expected.append(Int64(9500 + id))
            freed += ArchiveWriter.size(of: dir(id))
        }
        func evict(dryRun: Bool) throws -> JSONValue {
            try JSONValue.parse(try client.request(BusMessage(subject: "clusterd.admin.archive.evict", headers: ["Clusterd-Actor": ["ops"]],
                                                              data: Array(#"{"dryRun":\#(dryRun)}"#.utf8)), timeout: .seconds(10)).data)
        }
        func ids(_ v: JSONValue?) -> [Int64] { if case .array(let a)? = v { return a.compactMap { if case .integer(let i)? = $0["jobId"] { i } else { nil } } }; return [] }
        let dry = try evict(dryRun: true)
        #expect(ids(dry["wouldEvict"]) == expected, "\(dry)")
        // The documented request and reply (subjects/clusterd.admin.archive.md).
        let doc = try String(contentsOfFile: Repository.path("subjects/clusterd.admin.archive.md"), encoding: .utf8)
        #expect(try #require(SubjectExamplesTests.blocks(doc, info: "json request=evict").first) == #"{"dryRun":true}"#)
        let documented = try JSONValue.parse(Array(try #require(SubjectExamplesTests.blocks(doc, info: "json reply=evict").first).utf8))
        func keys(_ v: JSONValue?) -> [String] { if case .object(let m)? = v { return m.map(\.key) }; return [] }
        func first(_ v: JSONValue?) -> JSONValue? { if case .array(let a)? = v { return a.first }; return nil }
        #expect(keys(dry) == keys(documented) && keys(first(dry["wouldEvict"])) == keys(first(documented["wouldEvict"])))
        #expect(count("SELECT count(*) FROM job") == 10 && FileManager.default.fileExists(atPath: dir(3)))
        let done = try evict(dryRun: false)
        #expect(ids(done["evicted"]) == expected, "\(done)")
        #expect(try db.prepare("SELECT job_id || ' ' || evicted_by FROM clusterd_archive_eviction ORDER BY id").rows { $0.text(0) } == expected.map { "\($0) ops" })
        #expect(count("SELECT count(*) FROM job") == Int64(10 - expected.count))
        #expect(count("SELECT count(*) FROM clusterd_archive_eviction") == Int64(expected.count))
        #expect(count("SELECT count(*) FROM job WHERE job_id IN (9501, 9502)") == 2, "protected and kept stay")
        for id in expected { #expect(!FileManager.default.fileExists(atPath: dir(Int(id - 9500)))) }
        #expect(FileManager.default.fileExists(atPath: dir(1)) && FileManager.default.fileExists(atPath: dir(2)))
        #expect((3...6).contains(expected.count) && ArchiveWriter.size(of: root) <= lowBytes, "\(expected)")
        #expect(try evict(dryRun: true)["wouldEvict"] == .array([]), "under the high watermark now")
    }

    /// The scheduler's clock is the service's time for chores: moved past
    /// `jobs.held_stop_timeout_seconds`, a stop whose start never came is dead-lettered.
    @Test func aHeldStopExpiresWhenTheSchedulersClockPassesItsTimeout() async throws {
        let now = Int64(Date().timeIntervalSince1970)
        let clock = ManualClock(now)
        let service = try startService(clock: clock) { $0.jobs.heldStopTimeout = .seconds(3600) }
        defer { service.stop() }
        let letters = ServiceBusTests.Collector()
        let sub = try client.subscribe("clusterd.dlq.jobs") { letters.add($0) }
        try client.flush()
        let stop = #"job,function=stop_job event="{\"jobId\":9301,\"cluster\":\"fritz\",\"jobState\":\"completed\",\"stopTime\":\#(now - 60)}" 1"#
        _ = try JetStream(client).publish(BusMessage(subject: "cc.job.event", data: Array(stop.utf8)), messageID: "held-9301")
        let db = try Database(path: directory.appendingPathComponent("data/clusterd.db").path, readOnly: true)
        try await eventually("the stop to be held") { try db.prepare("SELECT count(*) FROM clusterd_held_stop").first { $0.int(0) } == 1 }
        service.scheduler.runDue()      // at the stop's own time nothing expires
        #expect(letters.messages.isEmpty)
        // A minute past the timeout: the stop's arrival time is the broker's, which may be a
        // second or two after `now`.
        clock.advance(by: 3660)
        try await eventually("the expiry's dead letter") { !letters.messages.isEmpty }
        let letter = try JSONValue.parse(try #require(letters.messages.first).data)
        #expect(letter["code"] == .string("held_stop_expired"), "\(letter)")
        #expect(try db.prepare("SELECT count(*) FROM clusterd_held_stop").first { $0.int(0) } == 0)
        _ = sub
    }

    /// Alert re-sends run on the scheduler's clock too: a firing alert goes out again once
    /// that clock passes `health.resend_interval_seconds`.
    @Test func aFiringAlertIsResentWhenTheSchedulersClockPassesTheResendInterval() async throws {
        let checks = directory.appendingPathComponent("checks.yaml")
        try "checks:\n  - id: slurm_state\n    source: {slurm_state: {mixed: OK}}\n".write(to: checks, atomically: true, encoding: .utf8)
        let now = Int64(Date().timeIntervalSince1970)
        let clock = ManualClock(now)
        let service = try startService(clock: clock) {
            $0.health.checks = checks.path
            $0.health.evaluationInterval = .milliseconds(200)
            $0.health.resendInterval = .seconds(300)
        }
        defer { service.stop() }
        let alerts = ServiceBusTests.Collector()
        let sub = try client.subscribe("clusterd.alert.>") { alerts.add($0) }
        try client.flush()
        let down = #"nodestate event="{\"cluster\":\"fritz\",\"nodes\":[{\"hostname\":\"f0110\",\"states\":[\"down\"]}]}" 1"#
        _ = try JetStream(client).publish(BusMessage(subject: "cc.node.state", data: Array(down.utf8)), messageID: "resend-down")
        let first = try JSONValue.parse(try #require(try await alerts.wait(count: 1).first).data)
        #expect(first["status"] == .string("firing"))
        // Past the interval even if the firing was recorded a few seconds after `now`.
        clock.advance(by: 330)
        let again = try JSONValue.parse(try await alerts.wait(count: 2)[1].data)
        #expect(again["fingerprint"] == first["fingerprint"] && again["status"] == .string("firing"), "\(again)")
        #expect(service.counters["alerts.resent_or_unsilenced"] >= 1)
        _ = sub
    }

    /// A stop does not wait for the next evaluation tick: with an hour's interval, the health
    /// loop (which once consumed the stop's wake-up and then slept the interval) ends at once.
    @Test func aServiceWithALongEvaluationIntervalStopsAtOnce() async throws {
        let service = try startService { $0.health.evaluationInterval = .seconds(3600) }
        let stopped = Atomic<Bool>(false)
        Thread { service.stop(); stopped.store(true, ordering: .relaxed) }.start()
        try await eventually("the service to stop", timeout: 20) { stopped.load(ordering: .relaxed) }
    }
}
