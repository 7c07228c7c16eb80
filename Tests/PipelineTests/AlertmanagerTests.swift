import Bus
import BusTestSupport
import Config
import Foundation
import FoundationNetworking
import Logging
import Model
import Pipeline
import Testing
#if canImport(FoundationNetworking)
#endif

/// Alerts forwarded to a real Alertmanager (Debian's prometheus-alertmanager) on loopback and
/// read back from its API.
@Suite(.serialized, .timeLimit(.minutes(3))) final class AlertmanagerTests: BusSuite {
    let fixture: BusFixture
    var alertmanager: Process
    let amURL: String
    let amPort: Int

    init() throws {
        fixture = try BusFixture("clusterd-am")
        let directory = fixture.directory
        try "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n"
            .write(to: directory.appendingPathComponent("am.yml"), atomically: true, encoding: .utf8)
        amPort = freeLoopbackPort()
        amURL = "http://127.0.0.1:\(amPort)"
        try Data().write(to: directory.appendingPathComponent("alertmanager.log"))
        alertmanager = try Self.startAlertmanager(directory: directory, port: amPort, storage: "am")
    }

    /// Alertmanager on `port` with its state in `storage` (a new name: an empty Alertmanager).
    static func startAlertmanager(directory: URL, port: Int, storage: String) throws -> Process {
        let am = Process()
        am.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus-alertmanager")
        am.arguments = ["--config.file=\(directory.appendingPathComponent("am.yml").path)",
                        "--storage.path=\(directory.appendingPathComponent(storage).path)",
                        "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address="]
        let log = try FileHandle(forWritingTo: directory.appendingPathComponent("alertmanager.log"))
        log.seekToEndOfFile()
        am.standardError = log
        am.standardOutput = FileHandle.nullDevice
        try ChildProcess.run(am)
        return am
    }

    /// The alerts Alertmanager lists (`active=true`: only active ones), waiting up to 60 s for `until`.
    func waitForAlerts(active: Bool = false, until: ([JSONValue]) -> Bool) async throws -> [JSONValue] {
        let deadline = Date().addingTimeInterval(60)
        var alerts: [JSONValue] = []
        while Date() < deadline {
            if let (_, body) = try? await get("/api/v2/alerts" + (active ? "?active=true" : "")), case .array(let list)? = try? JSONValue.parse(body) {
                alerts = list
                if until(list) { break }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return alerts
    }

    deinit {
        alertmanager.terminate()
        alertmanager.waitUntilExit()
    }

    /// Alertmanager's own log, shown when it does not become ready.
    var alertmanagerLogFile: URL { directory.appendingPathComponent("alertmanager.log") }
    var alertmanagerLog: String { (try? String(contentsOf: alertmanagerLogFile, encoding: .utf8)) ?? "" }

    func get(_ path: String) async throws -> (Int, [UInt8]) {
        // A short timeout per request: a loaded machine retries instead of waiting out the default 60 s.
        var request = URLRequest(url: URL(string: amURL + path)!)
        request.timeoutInterval = 5
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, Array(data))
    }

    @Test func firingAndResolvedAlertsReachAlertmanager() async throws {
        var ready = 0
        // Generous: Alertmanager starts in well under a second, but not on a machine under load.
        let deadline = Date().addingTimeInterval(60)
        while ready != 200 && Date() < deadline {
            ready = (try? await get("/-/ready").0) ?? 0
            if ready != 200 { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(ready == 200, "Alertmanager log:\n\(alertmanagerLog)")
        try HealthBusTests.checks.write(to: directory.appendingPathComponent("checks.yaml"), atomically: true, encoding: .utf8)
        var config = ClusterdConfig()
        config.nats.servers = [server.url]
        config.storage.dataDir = directory.appendingPathComponent("data").path
        config.jobs.clusterFiles = [Repository.path("config/clusters/alex/cluster.json")]
        config.health.topology = Repository.path("config/topology.yaml")
        config.health.checks = directory.appendingPathComponent("checks.yaml").path
        config.health.evaluationInterval = .milliseconds(200)
        config.observability.listen = ""
        var receiver = ClusterdConfig.AlertmanagerSettings.Receiver(name: "local", url: amURL, severities: ["crit"])
        receiver.resendInterval = .seconds(2)
        config.alertmanager.receivers = [receiver]
        var logger = Logger(label: "am-test")
        logger.logLevel = .critical
        let service = ClusterdService(config: config, logger: logger)
        try service.start()
        defer { service.stop() }
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "collector"))
        defer { client.close() }
        func gpu(_ v: Int) throws {
            try client.publish("cc.metrics.alex", Array("nv_temp,cluster=alex,hostname=a0603,type=accelerator,type-id=0 value=\(v) \(Int(Date().timeIntervalSince1970))".utf8))
            // Sized for a loaded machine (a 5 s flush timed out under two CPU hogs); returns at once otherwise.
            try client.flush(timeout: .seconds(30))
        }
        try gpu(99)
        let alert = try #require(try await waitForAlerts { !$0.isEmpty }.first)
        #expect(alert["labels"]?["alertname"] == .string("gpu_temperature") && alert["labels"]?["hostname"] == .string("a0603"))
        #expect(alert["labels"]?["rack"] == .string("g01") && alert["status"]?["state"] == .string("active"))
        #expect(alert["annotations"]?["summary"]?.stringValue?.contains("a0603") == true)
        // Alertmanager restarts with an empty state: the firing alert is back within the re-send interval.
        alertmanager.terminate()
        alertmanager.waitUntilExit()
        alertmanager = try Self.startAlertmanager(directory: directory, port: amPort, storage: "am-empty")
        let back = try await waitForAlerts { !$0.isEmpty }
        #expect(back.first?["labels"]?["alertname"] == .string("gpu_temperature"), "Alertmanager log:\n\(alertmanagerLog)")
        #expect(service.counters["alertmanager.local.resent"] >= 1)
        // Back to normal: the resolve reaches Alertmanager, which then no longer lists it as active.
        try gpu(50)
        #expect(try await waitForAlerts(active: true) { $0.isEmpty }.isEmpty)
        #expect(service.counters["alertmanager.local.sent"] == 2)
    }
}
