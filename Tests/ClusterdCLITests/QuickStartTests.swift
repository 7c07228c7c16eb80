import Foundation
import Testing

/// The README's quick start exactly as a new user runs it: `scripts/run`'s command
/// (`clusterd run --config config/clusterd.yaml`, no NATS URL: the embedded nats-server on
/// 4222, /readyz on 127.0.0.1:9464), then the README's own Python examples against it.
/// Serialized with the real-Slurm test, the only other user of those fixed ports.
@Suite(.serialized, .timeLimit(.minutes(5))) final class QuickStartTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-quickstart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // A checkout's relevant part: the shipped configuration and scripts, as scripts/run sees them.
        for item in ["config", "scripts"] {
            try FileManager.default.copyItem(at: CLIRunner.packageRoot.appendingPathComponent(item), to: directory.appendingPathComponent(item))
        }
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    var log: URL { directory.appendingPathComponent("clusterd.log") }
    var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// The embedded server's pid, from its ports file.
    func embeddedPID() -> Int32? {
        let dir = directory.appendingPathComponent("clusterd-data/nats")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.compactMap { name -> Int32? in
            guard name.hasPrefix("nats-server_"), name.hasSuffix(".ports") else { return nil }
            return Int32(name.dropFirst("nats-server_".count).dropLast(".ports".count))
        }.first { kill($0, 0) == 0 }
    }

    func waitFor(_ what: String, seconds: Double = 60, _ condition: () -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            guard Date() < deadline else {
                Issue.record("timed out waiting for \(what); clusterd's log:\n\(logText)")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func ready() -> Bool { CLIRunner.get(port: 9464, "/readyz")?.0 == 200 }

    /// The README's ```python blocks that end on their own (the alert consumer loops for ever).
    static func readmeExamples() throws -> [String] {
        let readme = try String(contentsOf: CLIRunner.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        return readme.components(separatedBy: "```python\n").dropFirst().compactMap { block in
            let code = block.components(separatedBy: "\n```").first ?? ""
            return code.contains("while True") ? nil : code
        }
    }

    @Test func runWithoutANATSURLServesTheEmbeddedBrokerOn4222AndTheREADMEExamplesWork() async throws {
        try #require(CLIRunner.get(port: 9464, "/readyz") == nil, "something already listens on 127.0.0.1:9464")
        let started = Date()
        let run = try CLIRunner.launch(["run", "--config", "config/clusterd.yaml"], log: log, directory: directory)
        defer { if run.isRunning { run.interrupt(); run.waitUntilExit() } }

        try await waitFor("/readyz 200") { ready() }
        #expect(logText.contains("clients connect to nats://127.0.0.1:4222"), "\(logText)")
        let firstLines = logText.split(separator: "\n").prefix(4).joined(separator: "\n")
        #expect(firstLines.contains("clusterd 0.4.0 starting") && firstLines.contains("nats://127.0.0.1:4222"), "\(firstLines)")
        let pid = try #require(embeddedPID())

        // The README's examples, as written (they connect to nats://127.0.0.1:4222).
        let examples = try Self.readmeExamples()
        #expect(examples.count >= 2)
        for (index, code) in examples.enumerated() {
            let file = directory.appendingPathComponent("example\(index).py")
            try code.write(to: file, atomically: true, encoding: .utf8)
            let result = try CLIRunner.runProgram("python3", [file.path], directory: directory)
            #expect(result.status == 0, "README example \(index) failed:\n\(code)\n\(result.stdout)\(result.stderr)")
            if code.contains("cc.job.event") {
                #expect(result.stdout.contains(#""status":"started""#) && result.stdout.contains(#""status":"stopped""#), "\(result.stdout)")
            }
            if code.contains("fleet.acme.api.register") {
                #expect(result.stdout.contains(#""totalServers":1"#) && result.stdout.contains(#""status":"completed""#), "\(result.stdout)")
            }
        }
        let example = try CLIRunner.runProgram("scripts/publish-example.py", ["--job-id", "1002"], directory: directory)
        #expect(example.status == 0, "\(example.stdout)\(example.stderr)")

        // At least ten seconds in, the embedded broker is still the one started, and ready.
        let remaining = 10 - Date().timeIntervalSince(started)
        if remaining > 0 { try await Task.sleep(for: .seconds(remaining)) }
        #expect(kill(pid, 0) == 0, "the embedded nats-server \(pid) died:\n\(logText)")
        #expect(ready())

        // A broker that dies is noticed, logged and restarted on the same port.
        kill(pid, SIGKILL)
        try await waitFor("the embedded server's death in the log") { logText.contains("the embedded nats-server exited unexpectedly") }
        try await waitFor("a new embedded server") { embeddedPID().map { $0 != pid } ?? false }
        try await waitFor("/readyz 200 after the restart") { ready() }
        let again = try CLIRunner.runProgram("scripts/publish-example.py", ["--job-id", "1003"], directory: directory)
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")

        // SIGTERM: a clean exit that takes the embedded server with it.
        let last = embeddedPID()
        run.terminate()
        run.waitUntilExit()
        #expect(run.terminationStatus == 0, "\(logText)")
        if let last { try await waitFor("the embedded server to go", seconds: 10) { kill(last, 0) != 0 } }
    }
}
