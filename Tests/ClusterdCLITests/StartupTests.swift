import BusTestSupport
import Foundation
import Testing

/// Start-up an operator can see and stop: /readyz from the first moment, a broker that is
/// not there named in the log, SIGTERM honoured while waiting for it, configuration errors
/// said plainly.
@Suite(.timeLimit(.minutes(2))) final class StartupTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-startup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    @Test func anUnreachableBrokerIsNamedReadyzSaysWhyAndSIGTERMStopsTheStartUp() async throws {
        let port = freeLoopbackPort()
        let log = directory.appendingPathComponent("clusterd.log")
        let run = try CLIRunner.launch(["run", "--config", "config/clusterd.yaml", "--nats-url", "nats://127.0.0.1:1",
                                        "--listen", "localhost:\(port)", "--data-dir", directory.appendingPathComponent("data").path],
                                       log: log, directory: CLIRunner.packageRoot)
        defer { if run.isRunning { run.interrupt(); run.waitUntilExit() } }
        var readyz: (Int, String)?
        let deadline = Date().addingTimeInterval(30)
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        while Date() < deadline {
            readyz = CLIRunner.get(port: port, "/readyz")
            if readyz != nil && logText().contains("failed; retrying") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(readyz?.0 == 503 && readyz?.1.contains("starting: setting up streams and consumers on nats://127.0.0.1:1") == true, "\(String(describing: readyz))")
        #expect(CLIRunner.get(port: port, "/healthz")?.0 == 200)
        #expect(logText().contains("not connected to NATS at nats://127.0.0.1:1"), "\(logText())")
        let stopped = Date()
        run.terminate()
        run.waitUntilExit()
        #expect(Date().timeIntervalSince(stopped) < 5 && run.terminationStatus == 0, "\(logText())")
    }

    /// Issue 21 #8: a wrong password was logged as "connection closed"; now the server's
    /// refusal is named, and the password itself never reaches the log.
    @Test func aRefusedLoginIsNamedAndThePasswordNotLogged() async throws {
        let conf = directory.appendingPathComponent("auth.conf")
        try "authorization { user: clusterd, password: right-one }\n".write(to: conf, atomically: true, encoding: .utf8)
        let broker = try NATSServer(arguments: ["-c", conf.path])
        let url = broker.url.replacingOccurrences(of: "nats://", with: "nats://clusterd:wrong-one@")
        let log = directory.appendingPathComponent("clusterd.log")
        let run = try CLIRunner.launch(["run", "--listen", "", "--nats-url", url, "--data-dir", directory.appendingPathComponent("data").path], log: log)
        defer { run.terminate(); run.waitUntilExit() }
        let deadline = Date().addingTimeInterval(30)
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        while !logText().contains("failed; retrying") && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(logText().contains("the server refused the login (Authorization Violation)"), "\(logText())")
        #expect(!logText().contains("wrong-one"), "\(logText())")
    }

    @Test func configurationErrorsAreSaidWithoutTheUsageText() throws {
        let missing = try CLIRunner.run(["run", "--config", "/no/such/clusterd.yaml"])
        #expect(missing.status != 0 && missing.stderr.contains("/no/such/clusterd.yaml: cannot read the file") && !missing.stderr.contains("USAGE"),
                "\(missing.stderr)")
        let badURL = try CLIRunner.run(["run", "--nats-url", "localhost:4222", "--data-dir", directory.path])
        #expect(badURL.status != 0 && badURL.stderr.contains("is not a URL like nats://host:4222") && !badURL.stderr.contains("USAGE"),
                "\(badURL.stderr)")
        let config = directory.appendingPathComponent("listen.yaml")
        try "observability: {listen: \"no-such-host.invalid:9464\"}\n".write(to: config, atomically: true, encoding: .utf8)
        let check = try CLIRunner.run(["check-config", "--config", config.path])
        #expect(check.status == 1 && check.stdout.contains("does not resolve"), "\(check.stdout)\(check.stderr)")
        let version = try CLIRunner.run(["--version"])
        #expect(version.status == 0 && version.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0.4.0")
    }
}
