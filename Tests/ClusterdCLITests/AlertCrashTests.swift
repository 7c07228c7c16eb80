import Bus
import BusTestSupport
import Foundation
import Testing

/// `clusterd run` killed with SIGKILL between an alert's firing and its resolve: after the
/// restart the resolve still arrives, and the alert stream holds exactly one message per
/// sequence.
@Suite(.serialized, .timeLimit(.minutes(3))) final class AlertCrashTests: BusSuite {
    let fixture: BusFixture
    let config: URL

    init() throws {
        fixture = try BusFixture("clusterd-alert")
        let directory = fixture.directory, server = fixture.server
        let checks = directory.appendingPathComponent("checks.yaml")
        try CLIRunner.gpuChecks().write(to: checks, atomically: true, encoding: .utf8)
        config = try CLIRunner.alexConfig(server: server.url, directory: directory, checks: checks)
    }

    /// Where both runs of clusterd log (warnings and errors), shown when an expectation fails.
    var logFile: URL { directory.appendingPathComponent("clusterd.log") }
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    func launch() throws -> Process {
        try CLIRunner.launch(["run", "--config", config.path], log: logFile)
    }

    final class Alerts: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [(id: String, status: String, sequence: Int)] = []
        func add(_ m: BusMessage) {
            guard let o = try? JSONSerialization.jsonObject(with: Data(m.data)) as? [String: Any] else { return }
            lock.lock()
            items.append((m.header("Nats-Msg-Id") ?? "", o["status"] as? String ?? "", o["sequence"] as? Int ?? 0))
            lock.unlock()
        }
        var all: [(id: String, status: String, sequence: Int)] { lock.lock(); defer { lock.unlock() }; return items }
    }

    /// Publishes `value` for one GPU every 200 ms until `done` holds (clusterd may still be
    /// starting; on a loaded machine that can take many seconds, so the deadline is generous).
    func feed(_ client: BusConnection, _ value: Int, until done: () -> Bool) async throws {
        let deadline = Date().addingTimeInterval(90)
        while !done() && Date() < deadline {
            let line = "nv_temp,cluster=alex,hostname=a0603,type=accelerator,type-id=0 value=\(value) \(Int(Date().timeIntervalSince1970))"
            // A flush that times out on a loaded machine is retried by the next round.
            try client.publish("cc.metrics.alex", Array(line.utf8))
            try? client.flush()
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    @Test func sigkillBetweenFiringAndResolveLosesNothingAndDoublesNothing() async throws {
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "consumer"))
        defer { client.close() }
        let alerts = Alerts()
        let sub = try client.subscribe("clusterd.alert.>") { alerts.add($0) }
        try client.flush()
        var clusterd = try launch()
        // Whichever run is current when the test ends (a failure included) is stopped: a
        // leftover clusterd would keep the test runner's output open.
        defer { if clusterd.isRunning { clusterd.terminate(); clusterd.waitUntilExit() } }
        try await feed(client, 99) { !alerts.all.isEmpty }
        kill(clusterd.processIdentifier, SIGKILL)
        clusterd.waitUntilExit()
        #expect(clusterd.terminationReason == .uncaughtSignal)
        clusterd = try launch()
        try await feed(client, 60) { alerts.all.contains { $0.status == "resolved" } }
        try await Task.sleep(for: .seconds(1))
        // A copy published twice around the crash carries the same id; the stream keeps one.
        var seen = Set<String>()
        let distinct = alerts.all.filter { seen.insert($0.id).inserted }
        #expect(distinct.map(\.status) == ["firing", "resolved"], "clusterd log:\n\(log)")
        #expect(distinct.map(\.sequence) == [1, 2])
        #expect(try JetStream(client).streamMessageCount("CLUSTERD_ALERTS") == 2)
        _ = sub
    }
}
