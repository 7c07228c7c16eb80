import Bus
import BusTestSupport
import Foundation
import Testing

/// The operator commands of the `clusterd` binary: check-config, query, tail.
@Suite(.serialized, .timeLimit(.minutes(3))) final class OperatorCLITests: BusSuite {
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-cli")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    @Test func checkConfigReportsEveryProblemWithItsFile() throws {
        let ok = try CLIRunner.run(["check-config"], directory: CLIRunner.packageRoot)
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.contains("config/checks.yaml: 7 checks") && ok.stdout.contains("config/topology.yaml: 1 sites"))
        let checks = directory.appendingPathComponent("checks.yaml")
        try "checks:\n  - id: a\n    source: {metric: x}\n    rules: [{op: '>', value: 1, severity: LOUD}]\n".write(to: checks, atomically: true, encoding: .utf8)
        let config = directory.appendingPathComponent("bad.yaml")
        try "health:\n  checks: \(checks.path)\n  topology: /no/such/topology.yaml\njobs:\n  cluster_files: [config/clusters/fritz/cluster.json]\n"
            .write(to: config, atomically: true, encoding: .utf8)
        let bad = try CLIRunner.run(["check-config", "--config", config.path, "--quiet"], directory: CLIRunner.packageRoot)
        #expect(bad.status == 1)
        let lines = bad.stdout.split(separator: "\n")
        #expect(lines.count == 2, "\(bad.stdout)")
        #expect(lines.contains { $0.contains("checks.yaml:4: check a: rule severity") })
        #expect(lines.contains { $0.contains("/no/such/topology.yaml: cannot read the file") })
        let typo = directory.appendingPathComponent("typo.yaml")
        try "intake:\n  mode: jetstream\n  bacth: 5\nhelth: {}\n".write(to: typo, atomically: true, encoding: .utf8)
        let t = try CLIRunner.run(["check-config", "--config", typo.path])
        #expect(t.status == 1 && t.stdout.contains("typo.yaml: line 3: unknown key \"intake.bacth\""), "\(t.stdout)")
        #expect(t.stdout.contains("typo.yaml: line 4: unknown key \"helth\""), "\(t.stdout)")
    }

    /// Issue 22 #12: an unreachable broker is said as such at once, as publish says it.
    @Test func queryNamesAnUnreachableBroker() throws {
        let started = Date()
        let r = try CLIRunner.run(["query", "jobs", "--server", "nats://127.0.0.1:1"])
        #expect(r.status == 2 && r.stderr.contains("cannot reach NATS at nats://127.0.0.1:1") && r.stderr.contains("Connection refused"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 3)
    }

    @Test func queryAndTailTalkToARunningClusterd() async throws {
        let run = Process()
        run.executableURL = CLIRunner.executable
        run.arguments = ["run", "--config", "config/clusterd.yaml", "--listen", "", "--nats-url", server.url, "--data-dir", directory.appendingPathComponent("data").path, "--log-level", "error"]
        run.currentDirectoryURL = CLIRunner.packageRoot
        run.standardError = FileHandle.nullDevice
        run.standardOutput = FileHandle.nullDevice
        try ChildProcess.run(run)
        defer { run.terminate(); run.waitUntilExit() }
        // Wait until the query API answers.
        var listed = try CLIRunner.run(["query", "jobs", "--server", server.url])
        let deadline = Date().addingTimeInterval(20)
        while listed.status != 0 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
            listed = try CLIRunner.run(["query", "jobs", "--server", server.url])
        }
        #expect(listed.status == 0 && listed.stdout.contains("total: 0"), "\(listed.stdout)\(listed.stderr)")
        // tail dlq in the background; a rejected event shows up as one readable line.
        let tail = Process()
        tail.executableURL = CLIRunner.executable
        tail.arguments = ["tail", "dlq", "--count", "1", "--server", server.url]
        let pipe = Pipe()
        tail.standardOutput = pipe
        try ChildProcess.run(tail)
        // Stopped on every path: a leftover `tail` would keep the test runner's output open.
        defer { if tail.isRunning { tail.terminate(); tail.waitUntilExit() } }
        // A tail that never sees its message is stopped after a minute: the test fails, not hangs.
        let watchdog = Task.detached {
            try? await Task.sleep(for: .seconds(60))
            if tail.isRunning { tail.terminate() }
        }
        defer { watchdog.cancel() }
        try await Task.sleep(for: .milliseconds(500))
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "hook"))
        defer { client.close() }
        let js = try JetStream(client)
        let good = #"job,function=start_job event="{\"jobId\":1001,\"user\":\"alice\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":1718004000}" 1"#
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array((good + "\njob,function=start_job event=\"{\\\"jobId\\\":2,\\\"cluster\\\":\\\"emmy\\\"}\" 1").utf8)),
                           messageID: "cli-1", retries: 40, interval: .milliseconds(250))
        let tailed = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        tail.waitUntilExit()
        #expect(tail.terminationStatus == 0)
        #expect(tailed.contains("jobs unknown_cluster line 2:"), "\(tailed)")
        let table = try CLIRunner.run(["query", "jobs", "cluster=fritz", "--server", server.url])
        let rows = table.stdout.split(separator: "\n")
        #expect(rows.contains { $0.hasPrefix("jobId") && $0.contains("jobState") }, "\(table.stdout) \(table.stderr) \(tailed)")
        #expect(rows.contains { $0.hasPrefix("1001") && $0.contains("alice") && $0.contains("running") })
        let json = try CLIRunner.run(["query", "jobs", "get", "jobId=1001", "--json", "--server", server.url])
        #expect(json.status == 0 && json.stdout.contains(#""user":"alice""#))
        let missing = try CLIRunner.run(["query", "jobs", "get", "jobId=4242", "--server", server.url])
        #expect(missing.status == 1 && missing.stderr.contains("error 404: no job 4242 matches"))
        let protect = try CLIRunner.run(["archive", "protect", "--job-id", "1001", "--cluster", "fritz", "--by", "ops", "--reason", "audit",
                                         "--server", server.url])
        #expect(protect.status == 0 && protect.stdout.contains(#""protected":true"#), "\(protect.stdout)\(protect.stderr)")
        let unknown = try CLIRunner.run(["archive", "protect", "--job-id", "7", "--cluster", "fritz", "--by", "ops", "--server", server.url])
        #expect(unknown.status == 1 && unknown.stderr.contains("error 404"))
        let letters = try CLIRunner.run(["dlq", "list", "stage=jobs", "--server", server.url])
        #expect(letters.status == 0 && letters.stdout.contains("unknown_cluster") && letters.stdout.contains("total: 1"), "\(letters.stdout)")
        let replay = try CLIRunner.run(["dlq", "replay", "stage=jobs", "code=unknown_cluster", "--server", server.url])
        #expect(replay.status == 0 && replay.stdout.contains("count: 1"), "\(replay.stdout)\(replay.stderr)")
        let registered = try client.request(BusMessage(subject: "fleet.acme.api.register", data: Array(#"{"name":"web1","region":"eu"}"#.utf8)))
        #expect(registered.header("Nats-Service-Error") == nil)
        let fleet = try CLIRunner.run(["query", "fleet", "acme", "list", "--server", server.url])
        #expect(fleet.status == 0 && fleet.stdout.contains("web1") && fleet.stdout.contains("total: 1"), "\(fleet.stdout)\(fleet.stderr)")
        let summary = try CLIRunner.run(["query", "fleet", "acme", "--json", "--server", server.url])
        #expect(summary.stdout.contains(#""totalServers":1"#), "\(summary.stdout)")
        let nobody = try CLIRunner.run(["query", "nodes", "--server", server.url.replacingOccurrences(of: "nats://", with: "nats://127.0.0.2:1#")])
        #expect(nobody.status != 0)
        // Issue 21 #8: a different event under an id the stream already holds is dropped by the
        // broker; publish says so (exit 3) instead of reporting an earlier delivery.
        let first = try CLIRunner.run(["publish", "job-start", "--server", server.url, "--message-id", "shared-id", "--job-id", "1101",
                                       "--cluster", "fritz", "--user", "bob", "--project", "p", "--nodes", "f0101", "--start-time", "1700000000"])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        let clash = try CLIRunner.run(["publish", "job-start", "--server", server.url, "--message-id", "shared-id", "--job-id", "1102",
                                       "--cluster", "fritz", "--user", "bob", "--project", "p", "--nodes", "f0101", "--start-time", "1700000000"])
        #expect(clash.status == 3 && clash.stderr.contains("NOT delivered") && clash.stderr.contains("different event"), "\(clash.stderr)")
        let repeated = try CLIRunner.run(["publish", "job-start", "--server", server.url, "--message-id", "shared-id", "--job-id", "1101",
                                          "--cluster", "fritz", "--user", "bob", "--project", "p", "--nodes", "f0101", "--start-time", "1700000000"])
        #expect(repeated.status == 0, "\(repeated.stderr)")
    }

    @Test func jsonLogsAreOneObjectPerLine() async throws {
        let run = Process()
        run.executableURL = CLIRunner.executable
        run.arguments = ["run", "--config", "config/clusterd.yaml", "--listen", "", "--nats-url", server.url, "--data-dir",
                         directory.appendingPathComponent("json").path, "--log-format", "json"]
        run.currentDirectoryURL = CLIRunner.packageRoot
        let pipe = Pipe()
        run.standardError = pipe
        run.standardOutput = FileHandle.nullDevice
        try ChildProcess.run(run)
        try await Task.sleep(for: .seconds(2))
        run.terminate()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        run.waitUntilExit()
        let lines = text.split(separator: "\n")
        #expect(lines.count >= 3, "\(text)")
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] is String && object?["message"] is String && object?["time"] is String, "\(line)")
        }
        #expect(text.contains(#""message":"clusterd running""#))
    }
}
