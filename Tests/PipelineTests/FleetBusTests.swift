import Bus
import BusTestSupport
import Config
import Fleet
import Foundation
import Logging
import Model
import Observability
import Pipeline
import Store
import Synchronization
import Testing
import Threads

/// The fleet through a real nats-server, with real HTTP servers on loopback playing the
/// managed servers.
@Suite(.serialized, .timeLimit(.minutes(3))) final class FleetBusTests: BusSuite {
    typealias Collector = ServiceBusTests.Collector
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-fleet")
    }

    /// Log lines of the service, to check what it never writes.
    final class LogSink: @unchecked Sendable {
        let lock = NSLock()
        var lines: [String] = []
        func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
        var all: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }
    }

    struct SinkHandler: LogHandler {
        let sink: LogSink
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? { get { metadata[key] } set { metadata[key] = newValue } }
        func log(event: LogEvent) {
            sink.add("\(event.level) \(event.message) \(metadata.merging(event.metadata ?? [:]) { $1 })")
        }
    }

    func startService(logs: LogSink, clock: any SchedulerClock = SystemClock()) throws -> ClusterdService {
        var config = ClusterdConfig()
        config.nats.servers = [server.url]
        config.storage.dataDir = directory.appendingPathComponent("data-\(UUID().uuidString)").path
        config.fleet.checkInterval = .seconds(1)
        config.fleet.timeout = .seconds(3)     // generous: the suites run in parallel on two cores
        config.observability.listen = ""
        config.fleet.tokenRefs = ["acme": ["env:FLEET_TEST_", "env:ACME_", "file:\(directory.path)/acme/", "host:127.0.0.1", "host:*.acme.example"]]
        let service = ClusterdService(config: config, logger: Logger(label: "fleet-test") { _ in SinkHandler(sink: logs) }, clock: clock)
        try service.start()
        return service
    }

    func ask(_ org: String, _ verb: String, _ body: String) throws -> (JSONValue, BusMessage) {
        let reply = try client.request(BusMessage(subject: "fleet.\(org).api.\(verb)", data: Array(body.utf8)), timeout: .seconds(10))
        return (try JSONValue.parse(reply.data), reply)
    }

    func health(_ org: String, _ name: String) throws -> String? {
        try ask(org, "get", #"{"name":"\#(name)"}"#).0["server"]?["health"]?.stringValue
    }

    /// A managed server's health API: answers `body` with `status` after `delay`.
    final class FakeServer: @unchecked Sendable {
        let lock = NSLock()
        var status = 200
        var body = #"{"status":"ok","database":{"status":"ok"},"redis":{"status":"ok"},"services":{"healthy":true}}"#
        var delay = 0.0
        var authorization: [String] = []
        var http: ObservabilityServer!

        init(status: Int = 200, body: String? = nil, delay: Double = 0) throws {
            self.status = status
            if let body { self.body = body }
            self.delay = delay
            http = try ObservabilityServer(host: "127.0.0.1", port: 0) { [unowned self] request in
                lock.lock()
                authorization.append(request.headers["authorization"] ?? "")
                let (s, b, d) = (self.status, self.body, self.delay)
                lock.unlock()
                if d > 0 { Thread.sleep(forTimeInterval: d) }
                return (s, "application/json", Array(b.utf8))
            }
            http.start()
        }

        var url: String { "http://127.0.0.1:\(http.port)" }
        func set(status: Int, body: String) { lock.lock(); self.status = status; self.body = body; lock.unlock() }
        var seenAuthorization: [String] { lock.lock(); defer { lock.unlock() }; return authorization }
    }

    @Test func pullChecksGiveTheRightHealthHistoryAndOneAlertPerTransition() async throws {
        let secret = "s3cr3t-\(UUID().uuidString)"
        setenv("FLEET_TEST_TOKEN", secret, 1)
        let healthy = try FakeServer()
        let degraded = try FakeServer(body: #"{"status":"ok","database":"ok","redis":"ok","services":{"healthy":false}}"#)
        let failing = try FakeServer(status: 500, body: "oops")
        let garbage = try FakeServer(body: "<html>hello</html>")
        let slow = try FakeServer(delay: 8)
        let refused = try FakeServer()
        let refusedURL = refused.url
        refused.http.stop()
        defer { for s in [healthy, degraded, failing, garbage, slow] { s.http.stop() } }
        let logs = LogSink()
        let service = try startService(logs: logs)
        defer { service.stop() }
        let alerts = Collector()
        let sub = try client.subscribe("clusterd.alert.>") { alerts.add($0) }
        try client.flush()
        let servers = [("web1", healthy.url), ("web2", degraded.url), ("web3", failing.url), ("web4", garbage.url), ("web5", slow.url), ("web6", refusedURL)]
        for (name, url) in servers {
            let (reply, message) = try ask("acme", "register", #"{"name":"\#(name)","apiUrl":"\#(url)","tokenRef":"env:FLEET_TEST_TOKEN","region":"eu","environment":"prod","tags":["web"]}"#)
            #expect(message.header("Nats-Service-Error") == nil, "\(reply.jsonText)")
        }
        let expected = ["web1": "healthy", "web2": "degraded", "web3": "critical", "web4": "unknown", "web5": "unreachable", "web6": "unreachable"]
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, try servers.contains(where: { try health("acme", $0.0) != expected[$0.0] }) {
            try await Task.sleep(for: .milliseconds(200))
        }
        for (name, _) in servers { #expect(try health("acme", name) == expected[name], "\(name)") }
        // Five problems, five alerts, one each, with fleet labels; more polls add none. (A check
        // that times out on an overloaded machine changes an alert's severity: still one alert,
        // announced again with its next sequence, so alerts are counted by fingerprint.)
        let polled = [healthy, degraded, failing, garbage].map(\.seenAuthorization.count)
        try await eventually("two more finished polls of every answering server", timeout: 30) {
            zip([healthy, degraded, failing, garbage], polled).allSatisfy { $0.seenAuthorization.count >= $1 + 3 }
        }
        _ = try health("acme", "web1")   // answered after the alerts of those polls (one connection, order kept)
        let firing = alerts.messages.compactMap { try? JSONValue.parse($0.data) }
        #expect(Set(firing.compactMap { $0["fingerprint"]?.stringValue }).count == 5, "\(firing.map(\.jsonText))")
        #expect(firing.allSatisfy { $0["status"] == .string("firing") })
        #expect(Set(firing.compactMap { $0["labels"]?["server"]?.stringValue }) == ["web2", "web3", "web4", "web5", "web6"])
        let web3 = try #require(firing.first { $0["labels"]?["server"] == .string("web3") })
        #expect(web3["labels"]?["organization"] == .string("acme") && web3["labels"]?["severity"] == .string("crit")
                && web3["labels"]?["region"] == .string("eu"))
        #expect(alerts.messages.first { $0.subject.hasSuffix(".web2") }?.subject == "clusterd.alert.warn.acme.web2")
        // History rows per check, with the reason.
        let (checks, _) = try ask("acme", "checks", #"{"name":"web3","limit":2}"#)
        guard case .array(let rows)? = checks["checks"] else { throw TestFailure("no checks") }
        #expect(rows.count == 2 && rows.allSatisfy { $0["status"] == .string("critical") && $0["error"] == .string("HTTP 500") })
        // Recovery: one resolve.
        degraded.set(status: 200, body: healthy.body)
        let until = Date().addingTimeInterval(10)
        func resolved() -> [JSONValue] {
            alerts.messages.compactMap { try? JSONValue.parse($0.data) }.filter { $0["status"] == .string("resolved") }
        }
        while resolved().isEmpty && Date() < until { try await Task.sleep(for: .milliseconds(100)) }
        #expect(resolved().map { $0["labels"]?["server"] } == [.string("web2")])
        // The token went to the server as a bearer token, and nowhere else.
        #expect(healthy.seenAuthorization.contains("Bearer \(secret)"))
        let data = URL(fileURLWithPath: service.config.storage.dataDir)
        let db = try Data(contentsOf: data.appendingPathComponent("clusterd.db"))
            + ((try? Data(contentsOf: data.appendingPathComponent("clusterd.db-wal"))) ?? Data())
        #expect(db.range(of: Data(secret.utf8)) == nil)
        #expect(!logs.all.contains(secret))
        // KV mirror of the health.
        let kv = try JetStream(client).keyValue(bucket: "clusterd_fleet", create: false)
        #expect(try JSONValue.parse(try #require(try kv.get("acme.web3")).value)["health"] == .string("critical"))
        // Summary, and another organization sees nothing of acme.
        let summary = try ask("acme", "summary", "{}").0
        #expect(summary["totalServers"] == .integer(6) && summary["byHealth"]?["unreachable"] == .integer(2))
        #expect(try ask("globex", "get", #"{"name":"web1"}"#).1.header("Nats-Service-Error-Code") == "404")
        #expect(try ask("globex", "list", "{}").0["total"] == .integer(0))
        // A deregistered server's alert resolves with it (no firing alert left to re-send) and
        // its KV entry goes.
        _ = try ask("acme", "deregister", #"{"name":"web3"}"#)
        let after = Date().addingTimeInterval(10)
        while resolved().count < 2 && Date() < after { try await Task.sleep(for: .milliseconds(100)) }
        let gone = try #require(resolved().first { $0["labels"]?["server"] == .string("web3") })
        #expect(gone["annotations"]?["summary"] == .string("web3 was deregistered"), "\(gone.jsonText)")
        #expect(try kv.get("acme.web3") == nil)
        _ = sub
    }

    @Test func theDocumentedRegistrationIsAccepted() throws {
        let service = try startService(logs: LogSink())
        defer { service.stop() }
        let doc = try String(contentsOfFile: Repository.path("subjects/fleet.api.md"), encoding: .utf8)
        let example = try #require(SubjectExamplesTests.blocks(doc, info: "json request=register").first)
        setenv("ACME_WEB1_TOKEN", "documented-token", 1)
        let (reply, message) = try ask("acme", "register", example)
        #expect(message.header("Nats-Service-Error") == nil, "\(reply.jsonText)")
        #expect(reply["server"]?["tokenRef"] == .string("env:ACME_WEB1_TOKEN") && reply["server"]?["health"] == .string("unknown"))
        let (refused, _) = try ask("acme", "register", #"{"name":"x","token":"plain"}"#)
        #expect(refused["code"] == .integer(400))
        #expect(try ask("acme", "register", #"{"name":"a.b"}"#).1.header("Nats-Service-Error-Code") == "400")
        // Token references are scoped per organization (issue 21 #1): globex may not name acme's
        // variable, nor anybody any file outside its granted directory.
        for (org, ref) in [("globex", "env:FLEET_TEST_TOKEN"), ("acme", "env:PATH"), ("acme", "file:/etc/hostname"),
                           ("acme", "file:\(directory.path)/acme/../../../etc/hostname")] {
            let (refusal, message) = try ask(org, "register", #"{"name":"thief","apiUrl":"http://127.0.0.1:9","tokenRef":"\#(ref)"}"#)
            #expect(message.header("Nats-Service-Error-Code") == "403" && refusal["error"]?.stringValue?.contains("not granted") == true,
                    "\(org) \(ref): \(refusal.jsonText)")
        }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("acme"), withIntermediateDirectories: true)
        try "acme-secret\n".write(to: directory.appendingPathComponent("acme/web.token"), atomically: true, encoding: .utf8)
        #expect(try ask("acme", "register", #"{"name":"ok","tokenRef":"file:\#(directory.path)/acme/web.token"}"#).1.header("Nats-Service-Error") == nil)
        // Its own granted secret, but to a host the operator did not grant (also hidden behind
        // user info): refused, naming the host (issue 21 #1, second half).
        setenv("FLEET_TEST_TOKEN", "acme-token", 1)
        for url in ["https://evil.example/api", "http://127.0.0.1@evil.example/", "http://127.0.0.1.evil.example/"] {
            let (refusal, message) = try ask("acme", "register", #"{"name":"exfil","apiUrl":"\#(url)","tokenRef":"env:FLEET_TEST_TOKEN"}"#)
            #expect(message.header("Nats-Service-Error-Code") == "403" && refusal["error"]?.stringValue?.contains("may not receive") == true,
                    "\(url): \(refusal.jsonText)")
        }
        // A reference that names nothing on the clusterd host is refused, not sent as no token (issue 22 #5).
        let (unresolved, unresolvedMessage) = try ask("acme", "register", #"{"name":"nokey","apiUrl":"http://127.0.0.1:9","tokenRef":"env:ACME_NOT_SET"}"#)
        #expect(unresolvedMessage.header("Nats-Service-Error-Code") == "400" && unresolved["error"]?.stringValue?.contains("does not resolve") == true,
                "\(unresolved.jsonText)")
        // A 900 kB description is refused with its limit, not stored.
        let huge = #"{"name":"big","description":"\#(String(repeating: "x", count: 900_000))"}"#
        let (tooBig, tooBigMessage) = try ask("acme", "register", huge)
        #expect(tooBigMessage.header("Nats-Service-Error-Code") == "400" && tooBig["error"]?.stringValue?.contains("at most 4096") == true,
                "\(tooBig.jsonText.prefix(300))")
        #expect(try ask("acme", "get", #"{"name":"big"}"#).1.header("Nats-Service-Error-Code") == "404")
    }

    @Test func aServerThatStopsHeartbeatingIsUnreachableAndRecovers() async throws {
        let logs = LogSink()
        let service = try startService(logs: logs)
        defer { service.stop() }
        let alerts = Collector()
        let sub = try client.subscribe("clusterd.alert.*.acme.hb1") { alerts.add($0) }
        try client.flush()
        _ = try ask("acme", "register", #"{"name":"hb1","heartbeatSeconds":3}"#)
        func beat() throws { try client.publish("fleet.acme.hb1.heartbeat", Array(#"{"version":"1.2.3"}"#.utf8)); try client.flush() }
        // The server's side beats from a thread of its own, steady even when the test pool is busy.
        // It beats until the test has checked the healthy phase, however slow the checks are.
        let stopBeating = Mutex(false)
        let beating = Thread { [client] in
            while !stopBeating.withLock({ $0 }) {
                try? client.publish("fleet.acme.hb1.heartbeat", Array(#"{"version":"1.2.3"}"#.utf8))
                try? client.flush()
                Thread.sleep(forTimeInterval: 0.25)
            }
        }
        beating.start()
        // Healthy once a beat went through the service; on a loaded CI machine that can take
        // seconds, so wait for it rather than sample a fixed window.
        let beatsEnd = Date().addingTimeInterval(20)
        var last: String? = nil
        while Date() < beatsEnd {
            last = try health("acme", "hb1")
            if last == "healthy" { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(last == "healthy", "health while beating: \(last ?? "none")")
        #expect(try ask("acme", "get", #"{"name":"hb1"}"#).0["server"]?["version"] == .string("1.2.3"))
        #expect(alerts.messages.isEmpty)
        stopBeating.withLock { $0 = true }
        // Silent: unreachable after the 3 s allowance, one alert.
        let deadline = Date().addingTimeInterval(10)
        while alerts.messages.isEmpty && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try health("acme", "hb1") == "unreachable")
        // Back: resolved.
        try beat()
        let until = Date().addingTimeInterval(10)
        while alerts.messages.count < 2 && Date() < until { try await Task.sleep(for: .milliseconds(100)) }
        let statuses = alerts.messages.compactMap { try? JSONValue.parse($0.data)["status"]?.stringValue }
        #expect(statuses == ["firing", "resolved"])
        _ = sub
    }

    @Test func organizationsAreIsolatedByTheBrokersPermissions() throws {
        let broker = try NATSServer(arguments: ["-c", Repository.path("config/nats-server.conf")])
        var config = ClusterdConfig()
        config.nats.servers = [broker.url]
        config.nats.connection.user = "clusterd"
        config.nats.connection.password = "clusterd-example-password"
        config.storage.dataDir = directory.appendingPathComponent("isolated").path
        config.observability.listen = ""
        config.fleet.tokenRefs = try ClusterdConfig.load(path: Repository.path("config/clusterd.yaml")).fleet.tokenRefs  // the shipped grants
        var logger = Logger(label: "fleet-perm")
        logger.logLevel = .critical
        let service = ClusterdService(config: config, logger: logger)
        try service.start()
        defer { service.stop() }
        let (status, out) = try Repository.runPython("scripts/org-isolation-check.py", [broker.url])
        #expect(status == 0, "\(out)")
        #expect(out.contains("cross-organization request refused by the broker") && out.contains("spoofed heartbeat refused"), "\(out)")
        #expect(out.contains("every foreign reference and every ungranted host refused"), "\(out)")
    }

    @Test func anOperationOverAGroupWithOneSilentServerIsPartial() async throws {
        let service = try startService(logs: LogSink())
        defer { service.stop() }
        for name in ["ok1", "bad1", "mute1", "other"] {
            _ = try ask("acme", "register", #"{"name":"\#(name)","tags":["\#(name == "other" ? "db" : "web")"],"region":"eu"}"#)
        }
        // A group by criteria (tag web) plus a static member check: three web servers.
        let (group, _) = try ask("acme", "group.save", #"{"name":"webfarm","tags":["web"],"regions":["eu"]}"#)
        #expect(group["group"]?["members"] == .array([.string("bad1"), .string("mute1"), .string("ok1")]))
        // The servers' side: one does it, one fails, one never answers.
        let a = try client.subscribe("fleet.acme.ok1.operation") { [client] m in
            if let r = m.reply { try? client.publish(r, Array(#"{"ok":true,"message":"restarted 3 services"}"#.utf8)) }
        }
        let b = try client.subscribe("fleet.acme.bad1.operation") { [client] m in
            if let r = m.reply { try? client.publish(r, Array(#"{"ok":false,"error":"systemctl: unit not found"}"#.utf8)) }
        }
        let c = try client.subscribe("fleet.acme.mute1.operation") { _ in }
        try client.flush()
        // The documented request, as written.
        let doc = try String(contentsOfFile: Repository.path("subjects/fleet.api.md"), encoding: .utf8)
        let request = try #require(SubjectExamplesTests.blocks(doc, info: "json request=operation.start").first)
        let (started, _) = try ask("acme", "operation.start", request)
        let id = try #require(started["operation"]?["id"]?.stringValue)
        #expect(started["operation"]?["totalServers"] == .integer(3))
        var op = JSONValue.null
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            op = try ask("acme", "operation.get", #"{"id":"\#(id)"}"#).0["operation"] ?? .null
            if op["completedAt"] != .null && op["completedAt"] != nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(op["status"] == .string("partial"), "\(op.jsonText)")
        #expect(op["completedServers"] == .integer(1) && op["failedServers"] == .integer(2))
        #expect(op["results"]?["ok1"]?["ok"] == .bool(true) && op["results"]?["ok1"]?["detail"] == .string("restarted 3 services"))
        #expect(op["results"]?["bad1"]?["detail"] == .string("systemctl: unit not found"))
        #expect(op["results"]?["mute1"]?["detail"]?.stringValue?.hasPrefix("no answer within 1 s") == true)
        #expect(op["initiatedBy"] == .string("alice") && op["type"] == .string("restart_services"))
        // Audit: listed, and another organization cannot see it.
        guard case .array(let ops)? = try ask("acme", "operation.list", "{}").0["operations"] else { throw TestFailure("no list") }
        #expect(ops.count == 1)
        #expect(try ask("globex", "operation.get", #"{"id":"\#(id)"}"#).1.header("Nats-Service-Error-Code") == "404")
        #expect(try ask("acme", "operation.start", #"{"type":"reboot","servers":["ok1"]}"#).1.header("Nats-Service-Error-Code") == "400")
        _ = (a, b, c)
    }

    @Test func pushedMetricsAreAggregatedPerPeriodAndBadLinesDeadLettered() async throws {
        // The documented lines are of a fixed day: the scheduler's pruning of pushed metrics
        // runs on that day, not today (else their minute buckets are past retention).
        let service = try startService(logs: LogSink(), clock: ManualClock(1_795_380_100))
        defer { service.stop() }
        _ = try ask("acme", "register", #"{"name":"m1"}"#)
        let letters = Collector()
        let sub = try client.subscribe("clusterd.dlq.fleet") { letters.add($0) }
        try client.flush()
        let doc = try String(contentsOfFile: Repository.path("subjects/fleet.metrics.md"), encoding: .utf8)
        let lines = try #require(SubjectExamplesTests.blocks(doc, info: "lp fleet=metrics").first)
        try client.publish("fleet.acme.m1.metrics", Array(lines.utf8))
        try client.flush()
        let letter = try JSONValue.parse(try #require(try await letters.wait(count: 1).first).data)
        #expect(letter["line"] == .integer(4) && letter["code"] == .string("wrong_type"))
        var minute = JSONValue.null
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            minute = try ask("acme", "metrics", #"{"name":"m1","period":"1m"}"#).0
            if case .array(let points)? = minute["metrics"]?["cpu_percent"], points.first?["samples"] == .integer(2) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard case .array(let cpu)? = minute["metrics"]?["cpu_percent"] else { throw TestFailure("no cpu series: \(minute.jsonText)") }
        #expect(cpu.count == 1 && cpu[0]["bucket"] == .integer(1_795_380_000) && cpu[0]["avg"]?.numberValue == 20
                && cpu[0]["min"]?.numberValue == 10 && cpu[0]["max"]?.numberValue == 30)
        #expect(minute["metrics"]?["memory_percent"] != nil && minute["metrics"]?["active_services"] != nil)
        #expect(minute["metrics"]?["failed_services"] == nil)
        let day = try ask("acme", "metrics", #"{"name":"m1","period":"1d","metric":"disk_percent"}"#).0
        guard case .array(let disk)? = day["metrics"]?["disk_percent"] else { throw TestFailure("no disk series") }
        #expect(disk.first?["bucket"] == .integer(1_795_305_600) && disk.first?["avg"]?.numberValue == 70)
        #expect(try ask("acme", "metrics", #"{"name":"m1","period":"2m"}"#).1.header("Nats-Service-Error-Code") == "400")
        // The metrics requests above are not pushed metrics of a server named "api": no bogus dead letter
        // (a flush round trip after the last request lets one arrive if it were sent).
        try client.flush()
        #expect(letters.messages.count == 1, "\(letters.messages.map(\.text))")
        // A request without a verb is answered (400 naming the verbs), not left to time out.
        let bare = try client.request(BusMessage(subject: "fleet.acme.api", data: Array("{}".utf8)), timeout: .seconds(5))
        #expect(bare.header("Nats-Service-Error-Code") == "400" && bare.text.contains("register"), "\(bare.text)")
        _ = sub
    }
}
