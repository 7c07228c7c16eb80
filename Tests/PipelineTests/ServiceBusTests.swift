import Bus
import BusTestSupport
import Config
import Foundation
@testable import Intake
import Logging
import MetricBuffers
import Model
@testable import Pipeline
import Store
import Testing

/// clusterd's service against a real nats-server: events in through JetStream, results and
/// dead letters out on the bus, nothing lost across a broker restart.
@Suite(.serialized, .timeLimit(.minutes(3))) final class ServiceBusTests: BusSuite {
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-svc")
    }

    /// This suite's helpers on another suite's server and directory.
    init(fixture: BusFixture) {
        self.fixture = fixture
    }

    /// A service on this suite's server and directory with the fritz cluster; `configure`
    /// adjusts the rest.
    func makeService(configure: (inout ClusterdConfig) -> Void = { _ in }) -> ClusterdService {
        var config = ClusterdConfig()
        config.nats.servers = [server.url]
        config.storage.dataDir = directory.path
        config.jobs.clusterFiles = [Repository.path("config/clusters/fritz/cluster.json")]
        config.observability.listen = ""  // 127.0.0.1:9464 belongs to FirstHourTests
        configure(&config)
        var logger = Logger(label: "svc-test")
        // CLUSTERD_TEST_LOG=debug shows the service's log when a test needs explaining.
        logger.logLevel = ProcessInfo.processInfo.environment["CLUSTERD_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return ClusterdService(config: config, logger: logger)
    }

    static func start(_ id: Int, startTime: Int = 1_700_000_000) -> String {
        #"job,function=start_job event="{\"jobId\":\#(id),\"user\":\"u\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":\#(startTime)}" \#(startTime)000000000"#
    }

    static func stop(_ id: Int, stopTime: Int = 1_700_000_600) -> String {
        #"job,function=stop_job event="{\"jobId\":\#(id),\"cluster\":\"fritz\",\"stopTime\":\#(stopTime)}" \#(stopTime)000000000"#
    }

    /// Collects messages of a subject into a thread-safe list.
    final class Collector: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [BusMessage] = []
        func add(_ m: BusMessage) { lock.lock(); items.append(m); lock.unlock() }
        var messages: [BusMessage] { lock.lock(); defer { lock.unlock() }; return items }

        func wait(count: Int, timeout: TimeInterval = 20) async throws -> [BusMessage] {
            let deadline = Date().addingTimeInterval(timeout)
            while messages.count < count && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            return messages
        }
    }

    func countJobs(_ sql: String = "SELECT count(*) FROM job WHERE job_state = 'completed'") throws -> Int {
        let db = try Database(path: directory.appendingPathComponent("clusterd.db").path)
        return Int(try db.prepare(sql).first { $0.int(0) } ?? 0)
    }

    func waitForJobs(_ n: Int, timeout: TimeInterval = 60) async throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        var seen = 0
        while Date() < deadline {
            seen = (try? countJobs()) ?? 0
            if seen >= n { return seen }
            try await Task.sleep(for: .milliseconds(100))
        }
        return seen
    }

    @Test func publisherGetsItsResultAndRejectionsReachTheDeadLetterSubject() async throws {
        let service = makeService()
        try service.start()
        defer { service.stop() }
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "hook"))
        let results = Collector()
        let letters = Collector()
        let s1 = try client.subscribe("clusterd.result.jobs.>") { results.add($0) }
        let s2 = try client.subscribe("clusterd.dlq.jobs") { letters.add($0) }
        try client.flush()
        let js = try JetStream(client)
        // The stop first: it is held until its start arrives.
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.stop(42).utf8)), messageID: "stop-42")
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(42).utf8)), messageID: "start-42")
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array("job,function=start_job event=\"{\\\"jobId\\\":1,\\\"cluster\\\":\\\"nope\\\"}\"".utf8)), messageID: "bad.1")
        let got = try await results.wait(count: 3)
        let bySubject = Dictionary(got.map { ($0.subject, try! JSONValue.parse($0.data)) }, uniquingKeysWith: { a, _ in a })
        #expect(bySubject["clusterd.result.jobs.stop-42"]?["ok"] == .bool(true))
        #expect(TestEnvironment.statuses(try #require(bySubject["clusterd.result.jobs.stop-42"])) == ["held"])
        #expect(TestEnvironment.statuses(try #require(bySubject["clusterd.result.jobs.start-42"])) == ["started_and_stopped"])
        #expect(bySubject["clusterd.result.jobs.bad_1"]?["ok"] == .bool(false))
        let letter = try JSONValue.parse(try #require(try await letters.wait(count: 1).first).data)
        #expect(letter["code"] == .string("unknown_cluster"))
        #expect(letter["messageId"] == .string("bad.1"))
        #expect(try countJobs() == 1)
        // Dead letters are kept in their stream for inspection.
        #expect(try js.streamMessageCount("CLUSTERD_DLQ") == 1)
        _ = (s1, s2)
    }

    /// A started service, a client of its own and what arrives on `subject` (keep the
    /// subscription alive; stop the service).
    func running(watching subject: String) throws -> (ClusterdService, BusConnection, Collector, BusSubscription) {
        let service = makeService()
        try service.start()
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "client"))
        let seen = Collector()
        let sub = try client.subscribe(subject) { seen.add($0) }
        try client.flush()
        return (service, client, seen, sub)
    }

    /// Issue 16's first two reproductions: extreme times crashed the intake on every
    /// redelivery (arithmetic overflow) or sized a 66 GB archive window.
    @Test func extremeTimesAreDeadLetteredAndTheServiceGoesOn() async throws {
        let (service, client, letters, sub) = try running(watching: "clusterd.dlq.jobs")
        defer { service.stop() }
        let js = try JetStream(client)
        func send(_ line: String, _ id: String) throws {
            _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(line.utf8)), messageID: id)
        }
        let now = Int(Date().timeIntervalSince1970)
        try send(#"job,function=start_job event="{\"jobId\":61,\"user\":\"u\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":-9223372036854775808}""#, "min-start")
        try send(Self.start(62, startTime: now - 600), "start-62")
        try send(#"job,function=stop_job event="{\"jobId\":62,\"cluster\":\"fritz\",\"stopTime\":9223372036854775807}""#, "max-stop")
        try send(#"job,function=stop_job event="{\"jobId\":62,\"cluster\":\"fritz\",\"stopTime\":\#(now - 600 + 1_000_000_000_000)}""#, "far-stop")
        try send(#"job,function=stop_job event="{\"jobId\":62,\"cluster\":\"fritz\",\"stopTime\":\#(now + 2 * 366 * 86_400)}""#, "long-stop")
        try send(#"job,function=start_job event="{\"jobId\":64,\"user\":\"u\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":915148800}""#, "start-1999")
        try send(Self.start(65, startTime: now + 2 * 86_400), "start-in-two-days")
        try send(#"job,function=start_job event="{\"jobId\":-5,\"user\":\"u\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1700000000}""#, "negative-id")
        try send(Self.start(66, startTime: now - 400 * 86_400), "start-66")
        try send(Self.stop(66, stopTime: now), "stop-after-400-days")
        // Good events after them are applied.
        try send(Self.stop(62, stopTime: now), "stop-62")
        try send(Self.start(63), "start-63")
        try send(Self.stop(63), "stop-63")
        let got = try await letters.wait(count: 8)
        let codes = got.compactMap { try? JSONValue.parse($0.data)["code"]?.stringValue }
        #expect(codes == ["out_of_range", "out_of_range", "out_of_range", "in_the_future", "out_of_range", "in_the_future", "out_of_range", "invalid_value"], "\(got.map(\.text))")
        #expect(try await waitForJobs(2) == 2)
        #expect(try countJobs("SELECT count(*) FROM job WHERE job_id = 66 AND job_state = 'running'") == 1)
        _ = sub
    }

    /// The poison-pill breaker for a message that fails with an error every time (here a
    /// trigger refuses to record it as applied): after three attempts it is dead-lettered as
    /// `poison_pill` with that error, and the messages behind it, held back until then, are
    /// applied in order. (RunCrashTests has the same for a message that kills the process.)
    @Test func aMessageThatAlwaysFailsIsDeadLetteredAfterThreeAttemptsAndTheRestFlows() async throws {
        let (service, client, letters, sub) = try running(watching: "clusterd.dlq.jobs")
        defer { service.stop() }
        let db = try Database(path: directory.appendingPathComponent("clusterd.db").path, busyTimeoutMilliseconds: 10_000)
        try db.execute("""
            CREATE TRIGGER test_refuse BEFORE INSERT ON applied_message WHEN NEW.origin = 'CC_EVENTS:2'
            BEGIN SELECT RAISE(ABORT, 'test: this message cannot be recorded'); END;
            """)
        let js = try JetStream(client)
        for (body, id) in [(Self.start(81), "start-81"), (Self.start(82), "start-82"), (Self.stop(81), "stop-81"), (Self.stop(82), "stop-82")] {
            _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(body.utf8)), messageID: id)
        }
        let got = try await letters.wait(count: 1)
        let letter = try JSONValue.parse(got[0].data)
        #expect(letter["code"]?.stringValue == "poison_pill")
        #expect(letter["origin"]?.stringValue == "CC_EVENTS:2")
        let reason = letter["reason"]?.stringValue ?? ""
        #expect(reason.contains("attempted 3 times") && reason.contains("3 failed") && reason.contains("test: this message cannot be recorded"), "\(reason)")
        // Job 81 stops after the poison pill; 82 never started, so its stop waits (held).
        #expect(try await waitForJobs(1) == 1)
        #expect(try countJobs("SELECT count(*) FROM job WHERE job_id = 82") == 0)
        #expect(try countJobs("SELECT count(*) FROM intake_attempt") == 0)
        _ = sub
    }

    /// Publishes `bad` (message id `quotes`), then a start and a stop of job `id`.
    func publishJob(_ id: Int, after bad: String, on js: JetStream) throws {
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(bad.utf8)), messageID: "quotes")
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(id).utf8)), messageID: "start-\(id)")
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.stop(id).utf8)), messageID: "stop-\(id)")
    }

    /// Waits (30 s at most) for the result of job `id`'s stop among `results`, and expects it.
    func expectStopResult(_ id: Int, in results: Collector) async throws {
        let deadline = Date().addingTimeInterval(30)
        while !results.messages.contains(where: { $0.subject == "clusterd.result.jobs.stop-\(id)" }) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(results.messages.contains { $0.subject == "clusterd.result.jobs.stop-\(id)" }, "\(results.messages.map(\.subject))")
    }

    /// Issue 16's third reproduction: a dead letter larger than the broker's max_payload (a
    /// 600 kB line of quotes escapes to > 1 MB) was retried forever and held back every later
    /// publication. The published letter now carries the first 16 KiB of the line and says
    /// so; the results after it flow and nothing is left behind.
    @Test func anOversizedDeadLetterIsCutToFitAndLaterMessagesFlow() async throws {
        let (service, client, letters, sub) = try running(watching: "clusterd.dlq.jobs")
        defer { service.stop() }
        let results = Collector()
        let resultSub = try client.subscribe("clusterd.result.jobs.>") { results.add($0) }
        try client.flush()
        let js = try JetStream(client)
        let quotes = "job,function=start_job event=" + String(repeating: "\"", count: 600_000)
        try publishJob(71, after: quotes, on: js)
        let letter = try JSONValue.parse(try await letters.wait(count: 1)[0].data)
        #expect(letter["rawTruncated"] == .bool(true) && letter["rawBytes"] == .integer(Int64(quotes.utf8.count)))
        #expect((letter["raw"]?.stringValue?.utf8.count ?? 0) <= DeadLetter.maxRaw + 3)
        try await expectStopResult(71, in: results)
        let db = try Database(path: directory.appendingPathComponent("clusterd.db").path)
        // The publisher removes what it sent after the broker's flush: the result can arrive first.
        try await eventually("the outbox emptied") { try db.prepare("SELECT count(*) FROM outbox").first { $0.int(0) } == 0 }
        #expect(try db.prepare("SELECT count(*) FROM outbox_parked").first { $0.int(0) } == 0)
        // The table keeps the whole line, for replay.
        #expect(try db.prepare("SELECT length(raw) FROM dead_letter").first { $0.int(0) } == Int64(quotes.utf8.count))
        _ = (sub, resultSub)
    }

    /// A broker configured with a small max_payload (20 kB): a dead letter that still exceeds
    /// it is parked (table `outbox_parked`, counted) instead of blocking what comes after.
    @Test func aMessageTheBrokerCanNeverTakeIsParkedAndLaterOnesFlow() async throws {
        let small = directory.appendingPathComponent("small.conf")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "max_payload: 20000\n".write(to: small, atomically: true, encoding: .utf8)
        let broker = try NATSServer(arguments: ["-c", small.path])
        let service = makeService { $0.nats.servers = [broker.url] }
        try service.start()
        defer { service.stop() }
        let client = try BusConnection(ConnectionOptions(servers: [broker.url], name: "client"))
        let results = Collector()
        let sub = try client.subscribe("clusterd.result.jobs.>") { results.add($0) }
        try client.flush()
        let js = try JetStream(client)
        let quotes = "job,function=start_job event=" + String(repeating: "\"", count: 19_000)
        try publishJob(72, after: quotes, on: js)
        try await expectStopResult(72, in: results)
        let db = try Database(path: directory.appendingPathComponent("clusterd.db").path)
        #expect(try db.prepare("SELECT count(*) FROM outbox").first { $0.int(0) } == 0)
        #expect(try db.prepare("SELECT count(*) FROM outbox_parked WHERE reason LIKE '%max_payload of 20000%'").first { $0.int(0) } ?? 0 >= 1)
        #expect(service.counters["outbox.parked"] >= 1)
        // An operator sees them (clusterd dlq parked).
        let listed = try JSONValue.parse(try client.request(BusMessage(subject: "clusterd.api.dlq.parked", data: Array("{}".utf8)), timeout: .seconds(10)).data)
        guard case .array(let parked)? = listed["parked"] else { throw TestFailure("no parked list: \(listed.jsonText)") }
        #expect(parked.first?["subject"] == .string("clusterd.dlq.jobs") && (parked.first?["reason"]?.stringValue ?? "").contains("max_payload"), "\(listed.jsonText)")
        _ = sub
    }

    /// Issue 16's fourth reproduction, first part: an empty metric message disappeared.
    @Test func anEmptyMetricMessageIsADeadLetter() async throws {
        let (service, client, letters, sub) = try running(watching: "clusterd.dlq.metrics")
        defer { service.stop() }
        try client.publish("cc.metrics.fritz", [])
        try client.publish("cc.metrics.fritz", Array("# only a comment\n\n".utf8))
        try client.flush()
        let got = try await letters.wait(count: 2)
        #expect(got.compactMap { try? JSONValue.parse($0.data)["code"]?.stringValue } == ["empty_message", "empty_message"])
        #expect(service.counters["dead_letters.metrics.empty_message"] == 2)
        _ = sub
    }

    /// Issue 21 #3 and #4: new series beyond the limits are dead letters (`series_limit`), not
    /// memory — hosts no cluster.json or topology lists have a small budget of their own; a
    /// sample from the far future is a dead letter (`in_the_future`) and the series it would
    /// have moved keeps taking current samples.
    @Test func metricSeriesAreBoundedAndFutureSamplesRefused() async throws {
        let service = makeService {
            $0.metrics.maxSeries = 8
            $0.metrics.maxUnknownHostSeries = 3
        }
        try service.start()
        defer { service.stop() }
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "collector"))
        let letters = Collector()
        let sub = try client.subscribe("clusterd.dlq.metrics") { letters.add($0) }
        try client.flush()
        let now = Int(Date().timeIntervalSince1970)
        // Ten bogus hosts: three get a series, seven are refused.
        let bogus = (0..<10).map { "mem_used,cluster=fritz,hostname=bogus\($0) value=1 \(now)" }.joined(separator: "\n")
        try client.publish("cc.metrics.fritz", Array(bogus.utf8))
        // Known hosts fill the rest of the total of eight; the ninth and tenth are refused.
        let known = (0..<7).map { "mem_used,cluster=fritz,hostname=f0\(101 + $0) value=1 \(now)" }.joined(separator: "\n")
        try client.publish("cc.metrics.fritz", Array(known.utf8))
        // Year 2200 on a series that exists, then a current sample on it.
        try client.publish("cc.metrics.fritz", Array("mem_used,cluster=fritz,hostname=f0101 value=5 7258118400".utf8))
        try client.publish("cc.metrics.fritz", Array("mem_used,cluster=fritz,hostname=f0101 value=6 \(now + 60)".utf8))
        try client.flush()
        let got = try await letters.wait(count: 10)
        let codes = got.compactMap { try? JSONValue.parse($0.data)["code"]?.stringValue }
        #expect(codes.filter { $0 == "series_limit" }.count == 9, "\(codes)")
        #expect(codes.filter { $0 == "in_the_future" }.count == 1, "\(codes)")
        let store = try #require(service.metricStore)
        #expect(store.hosts.count == 8)
        let key = SeriesKey(cluster: "fritz", host: "f0101", metric: "mem_used", scope: "node", id: "")
        let deadline = Date().addingTimeInterval(10)
        while store.newest(cluster: "fritz", host: "f0101", metric: "mem_used").map({ $0 < Int64(now) }) ?? true && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(store.read(key, from: Int64(now + 60), to: Int64(now + 60)) == [6])
        #expect(service.counters["dead_letters.metrics.series_limit"] == 9)
        _ = sub
    }

    /// Issue 21 #7: start-up updated an operator's pre-created R3 CC_EVENTS to R1 (library
    /// defaults). On a real three-node cluster, the R3 stream stays R3 and clusterd still
    /// works on it; the streams clusterd creates itself take `intake.replicas`.
    @Test func anOperatorsR3StreamStaysR3() async throws {
        let cluster = try NATSCluster()
        let operatorClient = try BusConnection(ConnectionOptions(servers: cluster.urls, name: "operator"))
        let js = try JetStream(operatorClient)
        try js.ensureStream(StreamConfig(name: "CC_EVENTS", description: "the operator's", subjects: ["cc.job.event", "cc.node.state"],
                                         duplicateWindow: .seconds(600), maxAge: .seconds(7 * 86_400), replicas: 3))
        let service = makeService {
            $0.nats.servers = cluster.urls
            $0.intake.replicas = 2
        }
        try service.start()
        defer { service.stop() }
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(90).utf8)), messageID: "start-90")
        let deadline = Date().addingTimeInterval(30)
        while (try? countJobs("SELECT count(*) FROM job WHERE job_id = 90")) != 1 && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try countJobs("SELECT count(*) FROM job WHERE job_id = 90") == 1)
        #expect(try js.streamSettings("CC_EVENTS").replicas == 3)
        #expect(try js.streamSettings("CC_EVENTS").maxAge == .seconds(7 * 86_400))
        #expect(try js.streamSettings("CLUSTERD_DLQ").replicas == 2)
    }

    /// Issue 19: a stream with fewer replicas than `intake.replicas` is not the high
    /// availability asked for: start-up stops with the reason and the command that fixes it.
    @Test func aStreamWithFewerReplicasThanConfiguredStopsStartUp() async throws {
        let cluster = try NATSCluster()
        let js = try JetStream(try BusConnection(ConnectionOptions(servers: cluster.urls, name: "operator")))
        try js.ensureStream(StreamConfig(name: "CC_EVENTS", description: "the operator's, R1", subjects: ["cc.job.event", "cc.node.state"], replicas: 1))
        let service = makeService {
            $0.nats.servers = cluster.urls
            $0.intake.replicas = 3
        }
        defer { service.stop() }
        #expect {
            try service.start()
        } throws: { error in
            "\(error)".contains("stream CC_EVENTS exists with 1 replica(s), fewer than intake.replicas (3)")
                && "\(error)".contains("nats stream edit CC_EVENTS --replicas 3")
        }
    }

    /// Issue 21 #5, the operator's side: while archive entries cannot be written (a full
    /// disk), /readyz says so with the error, and the gauge counts them.
    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func aFullArchiveDiskMakesClusterdNotReady() async throws {
        let service = makeService()
        try service.start()
        defer { service.stop() }
        let mountPoint = directory.appendingPathComponent("archive/fritz/7").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        mount.arguments = ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", mountPoint]
        try ChildProcess.run(mount)
        mount.waitUntilExit()
        try #require(mount.terminationStatus == 0)
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            umount.arguments = ["umount", mountPoint]
            try? ChildProcess.run(umount)
            umount.waitUntilExit()
        }
        _ = FileManager.default.createFile(atPath: mountPoint + "/filler", contents: Data(repeating: 1, count: 16 * 1024))
        #expect(service.readiness().isEmpty, "\(service.readiness())")
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "hook"))
        let js = try JetStream(client)
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(7001).utf8)), messageID: "start-7001")
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.stop(7001).utf8)), messageID: "stop-7001")
        let deadline = Date().addingTimeInterval(30)
        while !service.readiness().contains(where: { $0.contains("cannot be written") }) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let problems = service.readiness()
        #expect(problems.contains { $0.contains("1 job archive entries cannot be written") && $0.contains("No space left on device") }, "\(problems)")
        #expect(String(decoding: service.scrape(), as: UTF8.self).contains("clusterd_archive_failing 1"))
    }

    /// Issue 22 #8: the `stopped` result went out before the archive entry existed. It now
    /// says `archived: false` and names the subject where the archive outcome follows, once
    /// meta.json is on disk.
    @Test func theStopResultNamesWhereTheArchiveOutcomeFollows() async throws {
        let (service, client, results, sub) = try running(watching: "clusterd.result.>")
        defer { service.stop() }
        let js = try JetStream(client)
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(95).utf8)), messageID: "start-95")
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.stop(95).utf8)), messageID: "stop-95")
        let deadline = Date().addingTimeInterval(30)
        while !results.messages.contains(where: { $0.subject.hasPrefix("clusterd.result.archive.") }) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let stop = try #require(results.messages.first { $0.subject == "clusterd.result.jobs.stop-95" })
        let entry = try JSONValue.parse(stop.data)["events"].flatMap { if case .array(let a) = $0 { return a.first }; return nil }
        #expect(entry?["archived"] == .bool(false) && entry?["archive"] == .string("clusterd.result.archive.fritz.95.1700000000"), "\(stop.text)")
        let archived = try #require(results.messages.first { $0.subject == "clusterd.result.archive.fritz.95.1700000000" })
        let outcome = try JSONValue.parse(archived.data)
        #expect(outcome["ok"] == .bool(true) && outcome["monitoringStatus"] == .integer(3), "\(archived.text)")
        let dir = try #require(outcome["directory"]?.stringValue)
        #expect(FileManager.default.fileExists(atPath: dir + "/meta.json"))
        _ = sub
    }

    @Test func nothingIsLostWhenTheBrokerRestartsDuringAStream() async throws {
        let service = makeService()
        try service.start()
        defer { service.stop() }
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "hook"))
        let js = try JetStream(client, timeout: .seconds(2))
        let jobs = 150
        for i in 1...jobs {
            if i == jobs / 2 { try server.restart() }
            for (body, id) in [(Self.start(i), "start-\(i)"), (Self.stop(i), "stop-\(i)")] {
                // A hook retries with the same message id until the broker confirms.
                _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(body.utf8)), messageID: id, retries: 200)
            }
        }
        #expect(try await waitForJobs(jobs) == jobs)
        #expect(try countJobs("SELECT count(*) FROM job") == jobs)
    }

    @Test func coreModeAnswersTheReplySubject() async throws {
        let service = makeService { $0.intake.mode = .core }
        try service.start()
        defer { service.stop() }
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "hook"))
        let reply = try client.request(BusMessage(subject: "cc.job.event", headers: ["Nats-Msg-Id": ["c1"]], data: Array(Self.start(77).utf8)),
                                       timeout: .seconds(10))
        let result = try JSONValue.parse(reply.data)
        #expect(result["ok"] == .bool(true))
        #expect(TestEnvironment.statuses(result) == ["started"])
        let again = try client.request(BusMessage(subject: "cc.job.event", headers: ["Nats-Msg-Id": ["c1"]], data: Array(Self.start(77).utf8)),
                                       timeout: .seconds(10))
        #expect(try JSONValue.parse(again.data)["duplicate"] == .bool(true))
    }

    @Test func anIndependentClientPublishesAsAHookWould() async throws {
        let service = makeService()
        try service.start()
        defer { service.stop() }
        let script = Repository.path("scripts/publish-example.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "--server", server.url, "--job-id", "4711"]
        let out = Pipe()
        process.standardOutput = out
        try ChildProcess.run(process)
        process.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("\"status\":\"started\"") && text.contains("\"status\":\"stopped\""), "\(text)")
        #expect(try await waitForJobs(1) == 1)
    }
}

extension ServiceBusTests {
    /// Every documented example of `subjects/cc.job.event.md`, published through the bus in
    /// order: each line's dead letter (or result) carries the documented code.
    @Test func everyDocumentedRuleIsEnforcedThroughTheBus() async throws {
        let service = makeService { $0.jobs.clusterFiles.append(Repository.path("config/clusters/alex/cluster.json")) }
        try service.start()
        defer { service.stop() }
        let examples = try SubjectExamplesTests.examples().filter { $0.file == "cc.job.event.md" && $0.info.hasPrefix("lp expect=") }
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "hook"))
        let results = Collector()
        let letters = Collector()
        let s1 = try client.subscribe("clusterd.result.jobs.>") { results.add($0) }
        let s2 = try client.subscribe("clusterd.dlq.jobs") { letters.add($0) }
        try client.flush()
        let js = try JetStream(client)
        var expectedCodes: [String] = []
        for (i, example) in examples.enumerated() {
            _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(example.body.utf8)), messageID: "rule-\(i)")
            expectedCodes += example.info.dropFirst("lp expect=".count).split(separator: ",")
                .filter { $0.hasPrefix("rejected:") }.map { String($0.dropFirst("rejected:".count)) }
        }
        let got = try await results.wait(count: examples.count, timeout: 30)
        #expect(got.count == examples.count)
        for (i, example) in examples.enumerated() {
            let expected = example.info.dropFirst("lp expect=".count).split(separator: ",").map(String.init)
            let result = try #require(got.first { $0.subject == "clusterd.result.jobs.rule-\(i)" })
            #expect(TestEnvironment.statuses(try JSONValue.parse(result.data)) == expected, "example \(i + 1)")
        }
        let codes = try await letters.wait(count: expectedCodes.count).compactMap { m -> String? in
            guard case .string(let code)? = try JSONValue.parse(m.data)["code"] else { return nil }
            return code
        }
        #expect(codes == expectedCodes)
        _ = (s1, s2)
    }
}

extension ServiceBusTests {
    /// The intake fetches the next batch while it applies one. A batch that cannot be
    /// committed takes the one fetched ahead back to the broker with it: here (one message a
    /// batch) the database is unlocked while the loop waits to retry the first message, and
    /// still every message is applied — and its result published — in the order published.
    @Test func aBatchThatFailsTakesTheOneFetchedAheadBackWithIt() async throws {
        let service = makeService {
            $0.storage.busyTimeout = .milliseconds(50)
            $0.intake.batch = 1
        }
        let locker = try Database(path: directory.appendingPathComponent("clusterd.db").path)
        try service.start()
        defer { service.stop() }
        try locker.execute("BEGIN IMMEDIATE")
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "hook"))
        let results = Collector()
        let sub = try client.subscribe("clusterd.result.jobs.>") { results.add($0) }
        try client.flush()
        let js = try JetStream(client)
        let sent = [("start-21", Self.start(21)), ("start-22", Self.start(22)), ("stop-21", Self.stop(21)), ("stop-22", Self.stop(22))]
        for (id, body) in sent { _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(body.utf8)), messageID: id) }
        try await eventually("a failed batch", timeout: 10, state: { "\(service.counters["intake.batch_retries"]) retries" }) {
            service.counters["intake.batch_retries"] >= 1
        }
        try locker.execute("COMMIT")
        let got = try await results.wait(count: sent.count, timeout: 45)
        #expect(got.map(\.subject) == sent.map { "clusterd.result.jobs.\($0.0)" })
        #expect(try countJobs() == 2)
        _ = sub
    }

    /// A database locked by someone else: the batch is not committed, not acked, comes back,
    /// and is applied once the lock is gone.
    @Test func aLockedDatabaseDelaysButLosesNothing() async throws {
        let service = makeService { $0.storage.busyTimeout = .milliseconds(50) }
        try service.start()
        defer { service.stop() }
        let locker = try Database(path: directory.appendingPathComponent("clusterd.db").path)
        try locker.execute("BEGIN IMMEDIATE")
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "hook"))
        let js = try JetStream(client)
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(5).utf8)), messageID: "locked-5")
        let deadline = Date().addingTimeInterval(10)
        while service.counters["intake.batch_retries"] < 2 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(service.counters["intake.batch_retries"] >= 2)
        #expect(try countJobs("SELECT count(*) FROM job") == 0)
        try locker.execute("COMMIT")
        // The redelivery comes after the back-off reached while the lock was held (under load
        // a few more retries than two happen first; the back-off is capped at 30 s).
        try await eventually("the job after the lock", timeout: 45, state: { "\(service.counters["intake.batch_retries"]) retries" }) {
            try self.countJobs("SELECT count(*) FROM job") == 1
        }
        #expect(service.counters["dead_letters.jobs.invalid_value"] == 0)
    }
}
