import Bus
import BusTestSupport
import Foundation
import Model
import Testing

/// `clusterd run` takes a changed topology, checks library or cluster file on SIGHUP, as an
/// operator sends it (`systemctl reload clusterd`, `kill -HUP`); an invalid file is refused
/// with its line and the running configuration stays (issue 22 #16).
@Suite(.timeLimit(.minutes(2))) final class ReloadTests: BusSuite {
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-reload")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    @Test func sighupReloadsTheTopologyAndAnInvalidOneIsRefusedWithItsLine() async throws {
        let root = CLIRunner.packageRoot
        let topology = directory.appendingPathComponent("topology.yaml")
        let original = try String(contentsOf: root.appendingPathComponent("config/topology.yaml"), encoding: .utf8)
        try original.write(to: topology, atomically: true, encoding: .utf8)
        let config = directory.appendingPathComponent("clusterd.yaml")
        try """
            jobs:
              cluster_files: [\(root.appendingPathComponent("config/clusters/fritz/cluster.json").path)]
            health:
              topology: \(topology.path)
              checks: \(root.appendingPathComponent("config/checks.yaml").path)
            """.write(to: config, atomically: true, encoding: .utf8)
        let log = directory.appendingPathComponent("clusterd.log")
        let run = try CLIRunner.launch(["run", "--config", config.path, "--listen", "", "--nats-url", server.url,
                                        "--data-dir", directory.appendingPathComponent("data").path], log: log)
        defer { kill(run.processIdentifier, SIGKILL); run.waitUntilExit() }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        func waitForLog(_ text: String, count: Int = 1) async throws {
            let deadline = Date().addingTimeInterval(60)
            while logText().components(separatedBy: text).count - 1 < count {
                guard Date() < deadline, run.isRunning else {
                    Issue.record("no \"\(text)\" in the log:\n\(logText())")
                    throw CancellationError()
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        try await waitForLog("clusterd running")
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "operator"))
        func device(_ id: String) throws -> BusMessage {
            try client.request(BusMessage(subject: "clusterd.api.health.get", data: Array(#"{"device":"\#(id)"}"#.utf8)))
        }
        #expect(try device("r01-c03").header("Nats-Service-Error-Code") == "404")

        // A rack without an id (line 20 of the shipped file): refused, named, the running topology stays.
        try original.replacingOccurrences(of: "              - id: r01\n", with: "              - name: r01\n").write(to: topology, atomically: true, encoding: .utf8)
        kill(run.processIdentifier, SIGHUP)
        try await waitForLog("configuration reload refused")
        let line = (original.components(separatedBy: "\n").firstIndex(of: "              - id: r01") ?? -1) + 1
        #expect(logText().contains("topology.yaml:\(line): rack without id"), "\(logText())")
        #expect(try JSONValue.parse(try device("r01-c01").data)["device"] == .string("r01-c01"))

        try original.replacingOccurrences(of: "                    instance: [f0117, f0118]\n", with: """
                                instance: [f0117, f0118]
                              - id: r01-c03
                                instance: f[0901-0902]

            """).write(to: topology, atomically: true, encoding: .utf8)
        kill(run.processIdentifier, SIGHUP)
        try await waitForLog("configuration reloaded")
        let added = try JSONValue.parse(try device("r01-c03").data)
        guard case .array(let hosts)? = added["children"] else { Issue.record("no hosts in \(added)"); return }
        #expect(hosts.compactMap { $0["hostname"]?.stringValue } == ["f0901", "f0902"])
        #expect(run.isRunning)
    }
}
