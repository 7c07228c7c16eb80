import BusTestSupport
import Foundation
import Testing

/// The Slurm controller hook (`config/slurm/clusterd-hook.sh`) run with the environment
/// slurmctld gives it, against a running `clusterd run`.
@Suite(.serialized, .timeLimit(.minutes(3))) final class SlurmHookTests: BusSuite {
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-hook")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    var log: URL { directory.appendingPathComponent("hook.log") }

    /// Runs the hook as slurmctld would; returns its exit status and how long it took.
    func hook(_ context: String, _ extra: [String: String] = [:], url: String? = nil) throws -> (Int32, TimeInterval) {
        let p = Process()
        p.executableURL = CLIRunner.packageRoot.appendingPathComponent("config/slurm/clusterd-hook.sh")
        // slurmctld's clean environment: SLURM_* only; the settings come from a hook.env.
        let settings = directory.appendingPathComponent("hook.env")
        try """
            CLUSTERD_BIN=\(CLIRunner.executable.path)
            CLUSTERD_NATS_URL=\(url ?? server.url)
            CLUSTERD_HOOK_LOG=\(log.path)
            CLUSTERD_HOOK_TIMEOUT=8
            SLURM_CONF=/dev/null

            """.write(to: settings, atomically: true, encoding: .utf8)
        var env = ["CLUSTERD_HOOK_ENV": settings.path, "SLURM_SCRIPT_CONTEXT": context, "SLURM_JOB_ID": "4242", "SLURM_JOBID": "4242", "SLURM_JOB_USER": "alice",
                   "SLURM_JOB_UID": "1000", "SLURM_JOB_ACCOUNT": "(null)", "SLURM_JOB_PARTITION": "main",
                   "SLURM_JOB_NODELIST": "f[0101-0102]", "SLURM_CLUSTER_NAME": "fritz", "SLURM_JOB_NUM_NODES": "2",
                   "SLURM_JOB_CPUS_PER_NODE": "4(x2)", "SLURM_JOB_NAME": "relax", "SLURM_JOB_WORK_DIR": "/home/alice",
                   "SLURM_JOB_GROUP": "physics"]
        env.merge(extra) { $1 }
        p.environment = env
        let started = Date()
        try ChildProcess.run(p)
        p.waitUntilExit()
        return (p.terminationStatus, Date().timeIntervalSince(started))
    }

    @Test func prologAndEpilogRecordTheJobAndProblemsAreLoggedNotFatal() async throws {
        let run = Process()
        run.executableURL = CLIRunner.executable
        run.arguments = ["run", "--config", "config/clusterd.yaml", "--listen", "", "--nats-url", server.url, "--data-dir",
                         directory.appendingPathComponent("data").path, "--log-level", "error"]
        run.currentDirectoryURL = CLIRunner.packageRoot
        run.standardError = FileHandle.nullDevice
        run.standardOutput = FileHandle.nullDevice
        try ChildProcess.run(run)
        defer { run.terminate(); run.waitUntilExit() }
        var ready = try CLIRunner.run(["query", "jobs", "--server", server.url])
        let deadline = Date().addingTimeInterval(20)
        while ready.status != 0 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
            ready = try CLIRunner.run(["query", "jobs", "--server", server.url])
        }
        // No slurmctld answers squeue here: the hook falls back to the environment (Slurm
        // 23.02+ gives the times as SLURM_JOB_START_TIME/END_TIME) and logs that it did.
        #expect(try hook("prolog_slurmctld", ["SLURM_JOB_START_TIME": "1795000000"]).0 == 0)
        #expect(try hook("epilog_slurmctld", ["SLURM_JOB_EXIT_CODE": "768", "SLURM_JOB_EXIT_CODE2": "3:0",
                                              "SLURM_JOB_START_TIME": "1795000000", "SLURM_JOB_END_TIME": "1795000060"]).0 == 0)
        // The epilog hands the stop to a detached copy of itself: it lands after the hook exits.
        var job = try CLIRunner.run(["query", "jobs", "get", "jobId=4242", "cluster=fritz", "--json", "--server", server.url])
        let stopped = Date().addingTimeInterval(20)
        while !job.stdout.contains(#""jobState":"failed""#) && Date() < stopped {
            try await Task.sleep(for: .milliseconds(100))
            job = try CLIRunner.run(["query", "jobs", "get", "jobId=4242", "cluster=fritz", "--json", "--server", server.url])
        }
        #expect(job.status == 0, "\(job.stderr)")
        let text = job.stdout
        #expect(text.contains(#""jobState":"failed""#) && text.contains(#""numNodes":2"#) && text.contains(#""numHwthreads":8"#), "\(text)")
        #expect(text.contains(#""hostname":"f0101""#) && text.contains(#""hostname":"f0102""#) && text.contains(#""jobName":"relax""#))
        #expect(text.contains(#""project":"physics""#) && text.contains(#""partition":"main""#))
        #expect(text.contains(#""startTime":1795000000"#) && text.contains(#""duration":60"#), "\(text)")
        var fallback = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n")
        while fallback.count < 2 && Date() < stopped {  // the copy logs after its publish returns
            try await Task.sleep(for: .milliseconds(100))
            fallback = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        #expect(fallback.count == 2 && fallback.allSatisfy { $0.contains("delivered with a warning") && $0.contains("squeue") }, "\(fallback)")
        // A refused event (unknown cluster) and an unreachable broker: logged, exit 0, bounded time.
        #expect(try hook("prolog_slurmctld", ["SLURM_CLUSTER_NAME": "emmy", "SLURM_JOB_ID": "4343"]).0 == 0)
        let (rc, took) = try hook("prolog_slurmctld", ["SLURM_JOB_ID": "4444"], url: "nats://127.0.0.1:1")
        #expect(rc == 0 && took < 10)
        let logged = try String(contentsOf: log, encoding: .utf8)
        #expect(logged.contains("job 4343 job-start refused by clusterd") && logged.contains("emmy"), "\(logged)")
        #expect(logged.contains("job 4444 job-start not delivered"), "\(logged)")
        // The same event again is recognised as the same (message id), not applied twice.
        let again = try CLIRunner.run(["publish", "job-stop", "--job-id", "4242", "--cluster", "fritz", "--stop-time", "1", "--dry-run"])
        #expect(again.stdout.hasPrefix("cc.job.event Nats-Msg-Id: stop_job-fritz-4242-1\n"))
        #expect(again.stdout.contains(#"job,function=stop_job event="{\"jobId\":4242,\"cluster\":\"fritz\",\"jobState\":\"completed\",\"stopTime\":1}" 1000000000"#))
    }
}
