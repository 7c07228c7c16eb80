import Bus
import BusTestSupport
import Foundation
import Store
import Synchronization
import Testing

/// `clusterd run` as a process: SIGKILL in the middle of thousands of events, restart, and
/// every job is there exactly once with the right state.
@Suite(.serialized, .timeLimit(.minutes(3))) final class RunCrashTests: BusSuite {
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-run")
        try CLIRunner.installFritz(into: directory)
    }

    /// `clusterd run` on this suite's server and directory; `archiveKind` through a config file.
    func launch(archiveKind: String = "file") throws -> Process {
        let config = directory.appendingPathComponent("clusterd.yaml")
        try "storage:\n  archive_kind: \(archiveKind)\n".write(to: config, atomically: true, encoding: .utf8)
        return try CLIRunner.launch(["run", "--config", config.path, "--listen", "", "--nats-url", server.url, "--data-dir", directory.path,
                                     "--log-level", "warning"], log: directory.appendingPathComponent("clusterd.log"))
    }

    func scalar(_ sql: String) -> Int {
        guard let db = try? Database(path: directory.appendingPathComponent("clusterd.db").path, readOnly: true) else { return 0 }
        return Int((try? db.prepare(sql).first { $0.int(0) }) ?? 0)
    }

    static func start(_ id: Int) -> String {
        #"job,function=start_job event="{\"jobId\":\#(id),\"user\":\"u\#(id % 7)\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0\#(101 + id % 80)\"}],\"startTime\":\#(1_700_000_000 + id)}" 1"#
    }

    static func stop(_ id: Int) -> String {
        #"job,function=stop_job event="{\"jobId\":\#(id),\"cluster\":\"fritz\",\"jobState\":\"\#(id % 2 == 0 ? "completed" : "failed")\",\"stopTime\":\#(1_700_000_100 + id)}" 1"#
    }

    /// SIGKILL (a crash) or SIGTERM (a graceful stop, swift-service-lifecycle) in the middle of a
    /// stream of 2000 jobs: after a restart every job is there exactly once, and so is its archive
    /// entry (files of the tree, or a row of the SQLite archive).
    @Test(arguments: [(SIGKILL, "file"), (SIGTERM, "file"), (SIGKILL, "sqlite")])
    func aStopDuringAStreamLosesAndDoublesNothing(signal: Int32, archiveKind: String) async throws {
        var clusterd = try launch(archiveKind: archiveKind)
        let jobs = 2000
        let url = server.url
        // The hook side, on a thread of its own (it blocks while paused): starts, and stops
        // lagging 40 jobs behind, each with a message id.
        let resume = DispatchSemaphore(value: 0)
        let published = Mutex<String?>(nil)  // "ok" or the publisher's error
        Thread {
            let outcome: String
            do {
                _ = try CLIRunner.publishJobs(urls: [url], jobs: jobs, pauseAfter: 500, resume: resume, retries: 100,
                                              start: RunCrashTests.start, stop: RunCrashTests.stop)
                outcome = "ok"
            } catch {
                outcome = "\(error)"
            }
            published.withLock { $0 = outcome }
        }.start()
        // Stop clusterd once it is part-way through.
        let deadline = Date().addingTimeInterval(60)
        while scalar("SELECT count(*) FROM job") < 300 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        kill(clusterd.processIdentifier, signal)
        resume.signal()
        clusterd.waitUntilExit()
        if signal == SIGKILL {
            #expect(clusterd.terminationReason == .uncaughtSignal)
        } else {
            #expect(clusterd.terminationReason == .exit && clusterd.terminationStatus == 0)
        }
        let atKill = scalar("SELECT count(*) FROM job")
        while published.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(50)) }
        try #require(published.withLock { $0 } == "ok")
        clusterd = try launch(archiveKind: archiveKind)
        defer { clusterd.terminate(); clusterd.waitUntilExit() }
        let finish = Date().addingTimeInterval(120)
        while scalar("SELECT count(*) FROM job WHERE job_state <> 'running' AND monitoring_status = 3") < jobs && Date() < finish {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(atKill < jobs, "the kill came too late to test anything")
        #expect(scalar("SELECT count(*) FROM job") == jobs)
        #expect(scalar("SELECT count(DISTINCT job_id) FROM job") == jobs)
        #expect(scalar("SELECT count(*) FROM job WHERE job_state = 'completed'") == jobs / 2)
        #expect(scalar("SELECT count(*) FROM job WHERE job_state = 'failed'") == jobs / 2)
        #expect(scalar("SELECT count(*) FROM job WHERE duration = 100") == jobs)
        #expect(scalar("SELECT count(*) FROM job WHERE monitoring_status = 3") == jobs)
        #expect(scalar("SELECT count(*) FROM dead_letter") == 0)
        #expect(scalar("SELECT count(*) FROM outbox") == 0)
        let files = FileManager.default.enumerator(atPath: directory.appendingPathComponent("archive/fritz").path)?
            .compactMap { $0 as? String }.filter { $0.hasSuffix("/meta.json") }.count
        if archiveKind == "sqlite" {
            let archive = try Database(path: directory.appendingPathComponent("job-archive.db").path, readOnly: true)
            #expect(try archive.prepare("SELECT count(*), count(DISTINCT job_id) FROM jobs").first { [$0.int(0), $0.int(1)] } == [Int64(jobs), Int64(jobs)])
            #expect(files == 0)
        } else {
            #expect(files == jobs)
        }
    }

    /// Issue 16's poison-pill breaker, with real crashes: a message whose application never
    /// finishes (a trigger the test adds makes SQLite work for hours on it) is SIGKILLed
    /// with the process once as part of a batch and then at each of its three recorded
    /// attempts; the next run dead-letters it as `poison_pill` instead of dying again, and the
    /// events around it are applied.
    @Test func aMessageThatTakesTheProcessDownEveryTimeIsDeadLetteredAfterThreeAttempts() async throws {
        let config = directory.appendingPathComponent("clusterd.yaml")
        try "intake:\n  ack_wait_seconds: 2\n  max_attempts: 3\n".write(to: config, atomically: true, encoding: .utf8)
        let arguments = ["run", "--config", config.path, "--listen", "", "--nats-url", server.url, "--data-dir", directory.path, "--log-level", "warning"]
        let log = directory.appendingPathComponent("clusterd.log")
        var clusterd = try CLIRunner.launch(arguments, log: log)
        defer { kill(clusterd.processIdentifier, SIGKILL); clusterd.waitUntilExit() }
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "hook"))
        let js = try JetStream(client)
        func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
            let deadline = Date().addingTimeInterval(60)
            while !condition() {
                guard Date() < deadline else {
                    Issue.record("timed out waiting for \(what); log:\n\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
                    throw CancellationError()
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(91).utf8)), messageID: "start-91", retries: 100)
        try await waitUntil("job 91") { scalar("SELECT count(*) FROM job WHERE job_id = 91") == 1 }
        // Stream sequence 2 (the next message) never finishes applying.
        let db = try Database(path: directory.appendingPathComponent("clusterd.db").path, busyTimeoutMilliseconds: 10_000)
        try db.execute("""
            CREATE TABLE test_big (x INTEGER);
            WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) INSERT INTO test_big SELECT x FROM c;
            CREATE TRIGGER test_endless BEFORE INSERT ON applied_message WHEN NEW.origin = 'CC_EVENTS:2'
            BEGIN SELECT count(*) FROM test_big a, test_big b, test_big c; END;
            """)
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(92).utf8)), messageID: "start-92")
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.stop(91).utf8)), messageID: "stop-91")
        // The first kill: the batch is in flight (delivered, not acknowledged).
        try await waitUntil("the batch in flight") { ((try? js.consumerLag(stream: "CC_EVENTS", consumer: "clusterd_jobs"))?.ackPending ?? 0) >= 1 }
        for attempt in 1...3 {
            kill(clusterd.processIdentifier, SIGKILL)
            clusterd.waitUntilExit()
            clusterd = try CLIRunner.launch(arguments, log: log)
            // The breaker records each attempt before it makes it: kill it in the middle.
            try await waitUntil("attempt \(attempt)") { scalar("SELECT attempts FROM intake_attempt WHERE origin = 'CC_EVENTS:2'") == attempt }
        }
        kill(clusterd.processIdentifier, SIGKILL)
        clusterd.waitUntilExit()
        clusterd = try CLIRunner.launch(arguments, log: log)
        try await waitUntil("the poison pill's dead letter") { scalar("SELECT count(*) FROM dead_letter WHERE code = 'poison_pill'") == 1 }
        try await waitUntil("job 91 stopped after it") { scalar("SELECT count(*) FROM job WHERE job_id = 91 AND job_state = 'failed'") == 1 }
        let reason = try #require(try db.prepare("SELECT reason FROM dead_letter WHERE code = 'poison_pill'").first { $0.text(0) })
        #expect(reason.contains("attempted 3 times") && reason.contains("3 ended with the process"), "\(reason)")
        #expect(scalar("SELECT count(*) FROM job WHERE job_id = 92") == 0)
        #expect(scalar("SELECT count(*) FROM intake_attempt") == 0)
        try await waitUntil("an empty outbox") { scalar("SELECT count(*) FROM outbox") == 0 }
        #expect(clusterd.isRunning)
    }

    @Test func sigtermStopsCleanly() async throws {
        let clusterd = try launch()
        try await Task.sleep(for: .milliseconds(500))
        clusterd.terminate()
        clusterd.waitUntilExit()
        #expect(clusterd.terminationReason == .exit)
        #expect(clusterd.terminationStatus == 0)
        let log = try String(contentsOf: directory.appendingPathComponent("clusterd.log"), encoding: .utf8)
        #expect(!log.contains("critical"), "\(log)")
    }
}
