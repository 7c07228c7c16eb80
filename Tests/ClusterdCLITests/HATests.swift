import Bus
import BusTestSupport
import Foundation
import Store
import Synchronization
import Testing

/// How long HATests keep the killed replica down before its restart: 0 in the suite;
/// `CLUSTERD_HA_DOWNTIME_SECONDS=600` runs issue 19's "restarted after 10 minutes" by hand.
private let haDowntime = Int(ProcessInfo.processInfo.environment["CLUSTERD_HA_DOWNTIME_SECONDS"] ?? "") ?? 0

/// Two `clusterd run` replicas on a three-node NATS cluster (issue 19): the publishing
/// replica SIGKILLed in the middle of 2,000 jobs and an alert storm, a stream leader's
/// nats-server SIGKILLed mid-stream, a replica restarted after it was down.
@Suite(.serialized, .timeLimit(.minutes(haDowntime > 0 ? 20 : 5))) final class HATests {
    static let downtime = haDowntime
    let cluster: NATSCluster
    let directory: URL
    /// Each replica's /metrics, /healthz, /readyz port.
    let ports = ["a": freeLoopbackPort(), "b": freeLoopbackPort()]
    // Take-over ≈ ¾ TTL after the standby last saw a renewal + a look + the broker's latency: alone 5.3–6.0 s, in
    // the full suite on this 2-core VM (a 3-node cluster, two replicas and the other suites) 4.5–10.5 s — the three
    // KV round trips of a take-over then take seconds. The bar TTL + 3 s: a standby that waited for the lease to run
    // out (TTL) and then took it would still need more than the broker's worst seen here.
    static let ttl = 8
    static let jobs = 2000

    init() throws {
        cluster = try NATSCluster()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-ha-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try CLIRunner.gpuChecks().write(to: directory.appendingPathComponent("checks.yaml"), atomically: true, encoding: .utf8)
        for instance in ["a", "b"] {
            let servers = cluster.urls.map { "\"\($0)\"" }.joined(separator: ", ")
            try """
                nats: {servers: [\(servers)]}
                intake: {replicas: 3}
                ha: {instance: \(instance), lease_ttl_seconds: \(Self.ttl), standby_outbox_seconds: 30}
                storage: {data_dir: "\(directory.appendingPathComponent(instance).path)"}
                jobs: {cluster_files: ["\(CLIRunner.packageRoot.appendingPathComponent("config/clusters/alex/cluster.json").path)"]}
                health:
                  checks: "\(directory.appendingPathComponent("checks.yaml").path)"
                  topology: "\(CLIRunner.packageRoot.appendingPathComponent("config/topology.yaml").path)"
                  evaluation_interval_ms: 200
                observability: {listen: "127.0.0.1:\(ports[instance]!)"}
                log_level: notice
                """.write(to: config(instance), atomically: true, encoding: .utf8)
        }
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func config(_ instance: String) -> URL { directory.appendingPathComponent("\(instance).yaml") }
    func logFile(_ instance: String) -> URL { directory.appendingPathComponent("\(instance).log") }
    var logs: String {
        ["a", "b"].map { "--- \($0):\n" + ((try? String(contentsOf: logFile($0), encoding: .utf8)) ?? "") }.joined(separator: "\n")
    }

    /// The lease lines of `instance`'s log (when it saw, decided and took it), for a slow take-over.
    func leaseLog(_ instance: String) -> String {
        ((try? String(contentsOf: logFile(instance), encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.contains("lease") }.suffix(6).joined(separator: "\n")
    }

    func launch(_ instance: String) throws -> Process {
        try CLIRunner.launch(["run", "--config", config(instance).path], log: logFile(instance))
    }

    func scalar(_ instance: String, _ sql: String) -> Int {
        let path = directory.appendingPathComponent("\(instance)/clusterd.db").path
        guard let db = try? Database(path: path, readOnly: true) else { return 0 }
        return Int((try? db.prepare(sql).first { $0.int(0) }) ?? 0)
    }

    func rows(_ instance: String, _ sql: String) -> [String] {
        let path = directory.appendingPathComponent("\(instance)/clusterd.db").path
        guard let db = try? Database(path: path, readOnly: true) else { return [] }
        return (try? db.prepare(sql).rows { $0.text(0) }) ?? []
    }

    /// The replica named in the publisher lease (nil: none yet) and when the broker stored it.
    func lease(_ client: BusConnection) -> (holder: String, since: Date)? {
        guard let kv = try? JetStream(client).keyValue(bucket: "clusterd_lease", create: false),
              let entry = try? kv.entry("publisher") else { return nil }
        return (String(decoding: entry.value, as: UTF8.self), entry.created)
    }

    func holder(_ client: BusConnection) -> String? { lease(client)?.holder }

    func waitUntil(_ what: String, seconds: Double = 90, _ condition: () -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            guard Date() < deadline else {
                Issue.record("timed out waiting for \(what); logs:\n\(logs)")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    static func start(_ id: Int) -> String {
        #"job,function=start_job event="{\"jobId\":\#(id),\"user\":\"u\#(id % 7)\",\"project\":\"p\",\"cluster\":\"alex\",\"numNodes\":1,\"resources\":[{\"hostname\":\"a0\#(101 + id % 80)\"}],\"startTime\":\#(1_700_000_000 + id)}" 1"#
    }

    static func stop(_ id: Int) -> String {
        #"job,function=stop_job event="{\"jobId\":\#(id),\"cluster\":\"alex\",\"jobState\":\"\#(id % 2 == 0 ? "completed" : "failed")\",\"stopTime\":\#(1_700_000_100 + id)}" 1"#
    }

    /// Runs `CLIRunner.publishJobs` on a thread of its own (it blocks while paused).
    final class Publisher: Sendable {
        let resume = DispatchSemaphore(value: 0)
        /// "ok" or the hook's error, once it ended.
        let outcome = Mutex<String?>(nil)
        /// The longest wait between two confirmations.
        let stall = Mutex<Duration>(.zero)

        init(urls: [String], pauseAfter: Int) {
            Thread { [self] in
                do {
                    let longest = try CLIRunner.publishJobs(urls: urls, jobs: HATests.jobs, pauseAfter: pauseAfter, resume: resume, retries: 600,
                                                            start: HATests.start, stop: HATests.stop)
                    stall.withLock { $0 = longest }
                    outcome.withLock { $0 = "ok" }
                } catch {
                    outcome.withLock { $0 = "\(error)" }
                }
            }.start()
        }

        var done: Bool { outcome.withLock { $0 != nil } }
    }

    /// One line per GPU host: `value` for a0601 + (0..<hosts).
    static func temperatures(_ values: [(host: Int, value: Int)]) -> [UInt8] {
        let now = Int(Date().timeIntervalSince1970)
        return Array(values.map { "nv_temp,cluster=alex,hostname=a0\(601 + $0.host),type=accelerator,type-id=0 value=\($0.value) \(now)\n" }.joined().utf8)
    }

    /// Every alert transition in the alert stream: (message id, fingerprint, sequence, status).
    /// The periodic re-sends of firing alerts (`resend` > 0, after `health.resend_interval`) are
    /// not transitions.
    func storedTransitions(_ client: BusConnection) throws -> [(id: String, fingerprint: String, sequence: Int, status: String)] {
        let js = try JetStream(client)
        let count = try js.streamMessageCount("CLUSTERD_ALERTS")
        return try (0..<count).compactMap { i in
            let m = try js.message(stream: "CLUSTERD_ALERTS", sequence: i + 1)
            let o = try JSONSerialization.jsonObject(with: Data(m.data)) as? [String: Any] ?? [:]
            if (o["resend"] as? Int ?? 0) > 0 { return nil }
            return (m.header("Nats-Msg-Id") ?? "", o["fingerprint"] as? String ?? "", o["sequence"] as? Int ?? 0, o["status"] as? String ?? "")
        }
    }

    @Test func killingThePublishingReplicaLosesAndDoublesNothing() async throws {
        let client = try BusConnection(ConnectionOptions(servers: cluster.urls, name: "operator"))
        defer { client.close() }
        var replicas = ["a": try launch("a"), "b": try launch("b")]
        defer { for p in replicas.values where p.isRunning { p.terminate(); p.waitUntilExit() } }
        try await waitUntil("a replica holding the lease") { holder(client) != nil }
        let first = try #require(holder(client))
        let survivor = first == "a" ? "b" : "a"
        // Both replicas subscribed to the metrics (the standby logs its lease state once it looks).
        try await waitUntil("both replicas running") { scalar("a", "SELECT count(*) FROM job") >= 0 && logs.components(separatedBy: "clusterd running").count == 3 }

        let publisher = Publisher(urls: cluster.urls, pauseAfter: 800)
        // The storm, part one: 25 GPUs overheat; every firing reaches the alert stream.
        try await waitUntil("25 firing alerts") {
            try? client.publish("cc.metrics.alex", Self.temperatures((0..<25).map { ($0, 99) }))
            Thread.sleep(forTimeInterval: 0.2)
            return ((try? storedTransitions(client))?.count ?? 0) >= 25
        }
        try await waitUntil("300 jobs on the publishing replica") { scalar(first, "SELECT count(*) FROM job") >= 300 }
        let killedAt = Date()
        kill(replicas[first]!.processIdentifier, SIGKILL)
        replicas[first]!.waitUntilExit()
        publisher.resume.signal()
        // The storm, part two, while the lease is changing hands: the 25 cool down, 25 more overheat.
        let later = (0..<25).map { ($0, 50) } + (25..<50).map { ($0, 99) }
        try client.publish("cc.metrics.alex", Self.temperatures(later))
        try await waitUntil("the survivor taking the lease", seconds: 30) { holder(client) == survivor }
        // From the kill to the broker storing the survivor's lease (the broker's clock, this
        // machine's): what the test's own polling adds is not the replicas' take-over.
        let takeover = try #require(lease(client)).since.timeIntervalSince(killedAt)
        print(String(format: "take-over: the survivor's lease stored %.2f s after the SIGKILL (lease TTL %d s)", takeover, Self.ttl))
        #expect(takeover < Double(Self.ttl + 3), "take-over took \(takeover) s; the survivor's lease log: \(leaseLog(survivor))")
        try await waitUntil("75 transitions in the alert stream") {
            try? client.publish("cc.metrics.alex", Self.temperatures(later))
            Thread.sleep(forTimeInterval: 0.2)
            return ((try? storedTransitions(client))?.count ?? 0) >= 75
        }
        try await waitUntil("the hook's last confirmation") { publisher.done }
        try #require(publisher.outcome.withLock { $0 } == "ok")
        try await waitUntil("every job stopped on the survivor") { scalar(survivor, "SELECT count(*) FROM job WHERE job_state <> 'running'") == Self.jobs }

        #expect(scalar(survivor, "SELECT count(*) FROM job") == Self.jobs)
        #expect(scalar(survivor, "SELECT count(DISTINCT job_id) FROM job") == Self.jobs)
        #expect(scalar(survivor, "SELECT count(*) FROM job WHERE job_state = 'completed'") == Self.jobs / 2)
        #expect(scalar(survivor, "SELECT count(*) FROM dead_letter") == 0)
        // Every transition once: 25 fired, 25 resolved, 25 fired; ids and (fingerprint,
        // sequence) pairs unique; each fingerprint's sequences 1, 2, ... without a gap.
        let stored = try storedTransitions(client)
        #expect(stored.count == 75, "\(stored.map(\.id))")
        #expect(Set(stored.map(\.id)).count == stored.count)
        #expect(Set(stored.map { "\($0.fingerprint)/\($0.sequence)" }).count == stored.count)
        for (fingerprint, items) in Dictionary(grouping: stored, by: \.fingerprint) {
            #expect(items.map(\.sequence).sorted() == Array(1...items.count), "\(fingerprint)")
        }
        #expect(stored.filter { $0.status == "resolved" }.count == 25)

        // The killed replica comes back, catches up from its durable consumers and agrees.
        if Self.downtime > 0 {
            print("the killed replica stays down \(Self.downtime) s")
            try await Task.sleep(for: .seconds(Self.downtime))
        }
        let restartedAt = Date()
        replicas[first] = try launch(first)
        try await waitUntil("the restarted replica catching up") {
            scalar(first, "SELECT count(*) FROM job WHERE job_state <> 'running'") == Self.jobs
        }
        print(String(format: "the restarted replica caught up in %.1f s", Date().timeIntervalSince(restartedAt)))
        let jobs = "SELECT job_id || ' ' || cluster || ' ' || start_time || ' ' || job_state || ' ' || duration || ' ' || hpc_user FROM job ORDER BY job_id"
        #expect(rows(first, jobs) == rows(survivor, jobs))
        #expect(holder(client) == survivor, "the lease stays with the replica that holds it")
        // Metrics are not replayed (core NATS): the next report of every GPU settles the
        // restarted replica's alerts; then both have the same firing alerts.
        let firing = "SELECT fingerprint FROM alert WHERE status = 'firing' ORDER BY fingerprint"
        try await waitUntil("the same firing alerts on both replicas") {
            try? client.publish("cc.metrics.alex", Self.temperatures(later))
            Thread.sleep(forTimeInterval: 0.2)
            return rows(first, firing) == rows(survivor, firing)
        }
        #expect(rows(survivor, firing).count == 25)
        // Both replicas are ready (their own consumers bound), and /metrics says who publishes.
        for instance in ["a", "b"] {
            let ready = try CLIRunner.run(["healthcheck", "--url", "http://127.0.0.1:\(ports[instance]!)/readyz"])
            #expect(ready.status == 0, "\(instance): \(ready.stdout)\(ready.stderr)")
            let metrics = try String(contentsOf: URL(string: "http://127.0.0.1:\(ports[instance]!)/metrics")!, encoding: .utf8)
            #expect(metrics.contains("clusterd_publisher_lease_held{instance=\"\(instance)\"} \(instance == survivor ? 1 : 0)"), "\(metrics)")
        }
        #expect(try storedTransitions(client).count == 75, "the restarted replica published nothing twice")
        // An admin action is run by every replica and answered by the publishing one.
        let protect = #"{"jobId":7,"cluster":"alex","by":"ops","reason":"kept for the HA test"}"#
        let answer = try client.request(BusMessage(subject: "clusterd.admin.jobs.protect", data: Array(protect.utf8)), timeout: .seconds(10))
        #expect(answer.header("Nats-Service-Error") == nil, "\(answer.text)")
        try await waitUntil("the protection on both replicas") {
            scalar("a", "SELECT count(*) FROM clusterd_job_protection") == 1 && scalar("b", "SELECT count(*) FROM clusterd_job_protection") == 1
        }
    }

    @Test func killingTheStreamLeadersServerLosesAndDoublesNothing() async throws {
        let client = try BusConnection(ConnectionOptions(servers: cluster.urls, name: "operator"))
        defer { client.close() }
        let replicas = [try launch("a"), try launch("b")]
        defer { for p in replicas where p.isRunning { p.terminate(); p.waitUntilExit() } }
        try await waitUntil("a replica holding the lease") { holder(client) != nil }
        let publisher = Publisher(urls: cluster.urls, pauseAfter: 800)
        try await waitUntil("300 jobs on both replicas") { scalar("a", "SELECT count(*) FROM job") >= 300 && scalar("b", "SELECT count(*) FROM job") >= 300 }
        let leader = try #require(try JetStream(client).streamLeader("CC_EVENTS"))
        let node = try #require(cluster.nodes.indices.first { "n\($0 + 1)" == leader })
        cluster.nodes[node].kill()
        publisher.resume.signal()
        try await waitUntil("the hook's last confirmation", seconds: 120) { publisher.done }
        try #require(publisher.outcome.withLock { $0 } == "ok")
        let stall = publisher.stall.withLock { $0 }
        print("stream leader \(leader) killed: the hook's publishes stalled \(stall) at most")
        for instance in ["a", "b"] {
            try await waitUntil("every job stopped on \(instance)") { scalar(instance, "SELECT count(*) FROM job WHERE job_state <> 'running'") == Self.jobs }
            #expect(scalar(instance, "SELECT count(*) FROM job") == Self.jobs)
            #expect(scalar(instance, "SELECT count(DISTINCT job_id) FROM job") == Self.jobs)
            #expect(scalar(instance, "SELECT count(*) FROM job WHERE job_state = 'completed'") == Self.jobs / 2)
            #expect(scalar(instance, "SELECT count(*) FROM dead_letter") == 0)
        }
        let jobs = "SELECT job_id || ' ' || start_time || ' ' || job_state || ' ' || duration FROM job ORDER BY job_id"
        #expect(rows("a", jobs) == rows("b", jobs))
        // Retries after the kill carried their ids: the stream holds every event once.
        #expect(try JetStream(client).streamMessageCount("CC_EVENTS") == UInt64(2 * Self.jobs))
        #expect(try JetStream(client).streamLeader("CC_EVENTS") != leader)
    }
}
