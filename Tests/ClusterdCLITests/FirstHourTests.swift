import BusTestSupport
import Foundation
import Testing

/// The README's quick start exactly as a new user runs it: `scripts/run`'s command
/// (`clusterd run --config config/clusterd.yaml`, no NATS URL: the embedded nats-server on
/// 4222, /readyz on 127.0.0.1:9464), then the README's own Python examples against it.
/// Then a real Slurm with the hook installed as the README says. One serialized suite: both
/// tests use those fixed ports.
@Suite(.serialized, .timeLimit(.minutes(6))) final class FirstHourTests {
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

    func waitFor(_ what: String, seconds: Double = 60, context: () -> String = { "" }, _ condition: () -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            guard Date() < deadline else {
                Issue.record("timed out waiting for \(what); \(context())\nclusterd's log:\n\(logText)")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Stops a process that may hang: SIGTERM, then SIGKILL after 30 s.
    static func stop(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    func ready() -> Bool { CLIRunner.get(port: 9464, "/readyz")?.0 == 200 }

    /// `clusterd run --config config/clusterd.yaml` in the checkout copy, once /readyz says ready.
    func startAsTheREADMESays() async throws -> Process {
        if CLIRunner.get(port: 9464, "/readyz") != nil {
            let listeners = (try? CLIRunner.runProgram("ss", ["-ltnp"]))?.stdout ?? ""
            Issue.record("something already listens on 127.0.0.1:9464:\n\(listeners)")
            throw CancellationError()
        }
        let run = try CLIRunner.launch(["run", "--config", "config/clusterd.yaml"], log: log, directory: directory)
        do { try await waitFor("/readyz 200") { ready() } } catch {
            Self.stop(run)  // never leave it running: it would hold 4222 and 9464 for every later run
            throw error
        }
        return run
    }

    /// The README's ```python blocks that end on their own (the alert consumer loops for ever).
    static func readmeExamples() throws -> [String] {
        let readme = try String(contentsOf: CLIRunner.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        return readme.components(separatedBy: "```python\n").dropFirst().compactMap { block in
            let code = block.components(separatedBy: "\n```").first ?? ""
            return code.contains("while True") ? nil : code
        }
    }

    @Test func runWithoutANATSURLServesTheEmbeddedBrokerOn4222AndTheREADMEExamplesWork() async throws {
        let started = Date()
        let run = try await startAsTheREADMESays()
        defer { Self.stop(run) }
        #expect(logText.contains("clients connect to nats://127.0.0.1:4222"), "\(logText)")
        let firstLines = logText.split(separator: "\n").prefix(4).joined(separator: "\n")
        #expect(firstLines.contains("clusterd 0.4.0 starting") && firstLines.contains("nats://127.0.0.1:4222"), "\(firstLines)")
        let pid = try #require(embeddedPID())
        let healthcheck = try CLIRunner.run(["healthcheck"])
        #expect(healthcheck.status == 0 && healthcheck.stdout.hasPrefix("200 ready"), "\(healthcheck.stdout)\(healthcheck.stderr)")
        let metrics = CLIRunner.get(port: 9464, "/metrics")?.1 ?? ""
        #expect(metrics.contains(#"clusterd_build_info{version="0.4.0"} 1"#) && metrics.contains("process_resident_memory_bytes"), "\(metrics)")

        // The README's examples, as written (they connect to nats://127.0.0.1:4222).
        let examples = try Self.readmeExamples()
        #expect(examples.count >= 2)
        for (index, code) in examples.enumerated() {
            let file = directory.appendingPathComponent("example\(index).py")
            try code.write(to: file, atomically: true, encoding: .utf8)
            let result = try CLIRunner.runProgram("python3", [file.path], directory: directory)
            #expect(result.status == 0, "README example \(index) failed:\n\(code)\n\(result.stdout)\(result.stderr)\nclusterd:\n\(logText)")
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
        try await waitFor("clusterd to exit after SIGTERM", seconds: 60) { !run.isRunning }
        #expect(run.terminationStatus == 0, "\(logText)")
        if let last { try await waitFor("the embedded server to go", seconds: 10) { kill(last, 0) != 0 } }
    }

    /// clusterd's record of a job (`clusterd query jobs get`), as JSON.
    func clusterdJob(_ id: Int) -> [String: Any]? {
        guard let r = try? CLIRunner.run(["query", "jobs", "get", "jobId=\(id)", "cluster=fritz", "--json"]), r.status == 0,
              let json = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else { return nil }
        return json["job"] as? [String: Any]
    }

    /// Node f0101's change points in clusterd (`clusterd query nodes get ... history=true`).
    func nodeHistory() -> [[String: Any]] {
        guard let r = try? CLIRunner.run(["query", "nodes", "get", "cluster=fritz", "hostname=f0101", "history=true", "--json"]), r.status == 0,
              let json = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else { return [] }
        return json["history"] as? [[String: Any]] ?? []
    }

    @Test func aRealSlurmDeliversJobsAndNodeStatesThroughTheHookInstalledAsTheREADMESays() async throws {
        if let missing = LocalSlurm.missing {
            Issue.record("no real Slurm: \(missing)")
            return
        }
        let run = try await startAsTheREADMESays()
        defer { Self.stop(run) }

        // The README's installation, into <tmp>/etc/clusterd instead of /etc/clusterd, then
        // hook.env edited as an operator would: where clusterd is, where problems go, and
        // SLURM_CONF (this slurm.conf is not in /etc/slurm).
        let etc = directory.appendingPathComponent("etc/clusterd")
        let hook = etc.appendingPathComponent("clusterd-hook.sh"), settings = etc.appendingPathComponent("hook.env")
        #expect(try CLIRunner.runProgram("install", ["-D", "-m", "755", "config/slurm/clusterd-hook.sh", hook.path], directory: directory).status == 0)
        #expect(try CLIRunner.runProgram("install", ["-D", "-m", "600", "config/slurm/hook.env", settings.path], directory: directory).status == 0)
        let hookLog = directory.appendingPathComponent("hook.log")
        let shipped = try String(contentsOf: settings, encoding: .utf8)
        let slurmDir = directory.appendingPathComponent("slurm")
        func writeSettings(enabled: Bool) throws {
            let edited = shipped
                .replacingOccurrences(of: "CLUSTERD_BIN=/usr/local/bin/clusterd", with: "CLUSTERD_BIN=\(CLIRunner.executable.path)")
                .replacingOccurrences(of: "#CLUSTERD_HOOK_LOG=/var/log/clusterd-hook.log", with: "CLUSTERD_HOOK_LOG=\(hookLog.path)")
                .replacingOccurrences(of: "#SLURM_CONF=/etc/slurm/slurm.conf", with: "SLURM_CONF=\(slurmDir.path)/slurm.conf")
                .replacingOccurrences(of: "CLUSTERD_HOOK_ENABLED=yes", with: "CLUSTERD_HOOK_ENABLED=\(enabled ? "yes" : "no")")
            try edited.write(to: settings, atomically: true, encoding: .utf8)
        }
        try writeSettings(enabled: true)
        let slurm = try LocalSlurm(directory: slurmDir, hook: hook.path)
        defer { slurm.stop() }
        func hookText() -> String { (try? String(contentsOf: hookLog, encoding: .utf8)) ?? "" }
        func context() -> String { "hook log:\n\(hookText())\nclusterd:\n\(logText.suffix(3000))\n\(slurm.logs)" }
        try await waitFor("slurmd to register", seconds: 30) { slurm.nodeState == "idle" }

        // The node-state publisher, as its systemd unit runs it (settings from hook.env).
        let publisher = Process()
        publisher.executableURL = CLIRunner.executable
        publisher.arguments = ["slurm", "--poll-seconds", "1", "--reconcile-seconds", "3600"]
        publisher.environment = ProcessInfo.processInfo.environment.merging(slurm.environment) { $1 }
        let publisherLog = directory.appendingPathComponent("slurm-publisher.log")
        _ = FileManager.default.createFile(atPath: publisherLog.path, contents: nil)
        publisher.standardError = try FileHandle(forWritingTo: publisherLog)
        publisher.standardOutput = FileHandle.nullDevice
        try ChildProcess.run(publisher)
        defer { publisher.terminate(); publisher.waitUntilExit() }

        // A job whose hooks are lost (hook disabled while it runs and ends).
        try writeSettings(enabled: false)
        let lost = try slurm.submit(["--wrap", "sleep 1"])
        try await waitFor("the lost job to end", seconds: 60, context: { "job \(lost): \(slurm.state(lost)), node \(slurm.nodeState)\n\(slurm.logs)" }) { slurm.state(lost) == "COMPLETED" }
        try writeSettings(enabled: true)
        #expect(clusterdJob(lost) == nil)

        // Four jobs: timed out, cancelled while running, failing, completing.
        let timedOut = try slurm.submit(["--time=0:05", "--wrap", "sleep 300"])
        let started = directory.appendingPathComponent("cancelled-job-runs")
        let cancelled = try slurm.submit(["--wrap", "touch \(started.path); sleep 300"])
        try await waitFor("the job to cancel to run in clusterd", seconds: 60) { clusterdJob(cancelled)?["jobState"] as? String == "running" }
        // Cancelled while its script runs (it leaves a file). In the epilog Slurm 22.05 shows
        // the job only as COMPLETING with whatever exit status raced in (0, signal 15, or 143
        // when the shell outlived its sleep): the hook's detached copy waits for CANCELLED.
        try await waitFor("the job's script to run", seconds: 60, context: { slurm.logs }) { FileManager.default.fileExists(atPath: started.path) }
        #expect(try slurm.run("scancel", [String(cancelled)]).status == 0)
        let failing = try slurm.submit(["--wrap", "sleep 1; exit 3"])
        let completing = try slurm.submit(["--wrap", "sleep 2"])
        let expected = [timedOut: "timeout", cancelled: "cancelled", failing: "failed", completing: "completed"]
        for (id, state) in expected.sorted(by: { $0.key < $1.key }) {
            try await waitFor("job \(id) to end \(state) in clusterd", seconds: 150, context: { "clusterd has \(String(describing: clusterdJob(id))); Slurm: \(slurm.state(id))\n\(context())" }) { clusterdJob(id)?["jobState"] as? String == state }
            let truth = try #require(try slurm.job(id), "squeue lost job \(id)")
            let record = try #require(clusterdJob(id))
            let start = truth["start_time"] as? Int ?? -1, end = truth["end_time"] as? Int ?? -1
            #expect(record["startTime"] as? Int == start, "job \(id): \(record) vs Slurm \(truth["start_time"] ?? "?")")
            #expect(record["duration"] as? Int == end - start, "job \(id): \(record) vs Slurm \(start)–\(end)\n\(context())")
            #expect(record["user"] as? String == "root" && record["project"] as? String == "root" && record["partition"] as? String == "main")
        }

        // Drain and resume: both in clusterd's node-state history.
        #expect(try slurm.run("scontrol", ["update", "nodename=f0101", "state=drain", "reason=fan swap"]).status == 0)
        try await waitFor("the drain in clusterd", seconds: 30) { nodeHistory().contains { ($0["flags"] as? String ?? "").contains("drain") } }
        #expect(try slurm.run("scontrol", ["update", "nodename=f0101", "state=resume"]).status == 0)
        try await waitFor("the resume in clusterd", seconds: 30) {
            let history = nodeHistory()
            return history.count >= 2 && !((history.last?["flags"] as? String ?? "drain").contains("drain"))
        }

        // One reconciliation pass brings the lost job, with Slurm's times and state.
        let pass = try CLIRunner.run(["slurm", "--once"], environment: slurm.environment)
        #expect(pass.status == 0, "\(pass.stderr)")
        try await waitFor("the lost job in clusterd", seconds: 20) { clusterdJob(lost)?["jobState"] as? String == "completed" }
        let truth = try #require(try slurm.job(lost))
        #expect(clusterdJob(lost)?["startTime"] as? Int == truth["start_time"] as? Int)

        // The hook logged only the disabled job's skipped start and stop.
        let logged = hookText().split(separator: "\n")
        #expect(logged.count == 2 && logged.allSatisfy { $0.contains("job \(lost)") && $0.contains("hook disabled") }, "\(context())")
    }
}
