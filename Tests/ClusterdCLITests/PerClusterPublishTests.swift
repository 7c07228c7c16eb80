import BusTestSupport
import Foundation
import Store
import Testing

/// `clusterd publish --per-cluster-subject` (or `CLUSTERD_PER_CLUSTER_SUBJECT=1`, what a
/// hook.env sets) against a `clusterd run` that owns the cluster and reads per-cluster
/// subjects: the hook gets its result from the owner (issue 19's partitioning).
@Suite(.serialized, .timeLimit(.minutes(2))) final class PerClusterPublishTests: BusSuite {
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-per-cluster")
    }

    @Test func aHookPublishingPerClusterIsAnsweredByTheOwningInstance() async throws {
        let config = directory.appendingPathComponent("clusterd.yaml")
        try """
            intake: {clusters: [fritz], per_cluster_subjects: true}
            jobs: {cluster_files: ["\(CLIRunner.packageRoot.appendingPathComponent("config/clusters/fritz/cluster.json").path)"]}
            observability: {listen: ""}
            """.write(to: config, atomically: true, encoding: .utf8)
        let run = try CLIRunner.launch(["run", "--config", config.path, "--nats-url", server.url, "--data-dir", directory.appendingPathComponent("data").path],
                                       log: directory.appendingPathComponent("clusterd.log"))
        defer { run.terminate(); run.waitUntilExit() }
        let start = ["publish", "job-start", "--server", server.url, "--per-cluster-subject", "--job-id", "515", "--cluster", "fritz",
                     "--user", "alice", "--project", "p", "--nodes", "f0101", "--start-time", "1700000000"]
        #expect(try CLIRunner.run(start + ["--dry-run"]).stdout.hasPrefix("cc.job.event.fritz Nats-Msg-Id: start_job-fritz-515-1700000000"))
        // Until clusterd has made its consumer, the hook's attempts time out (exit 3): retried, as a hook would.
        var started = try CLIRunner.run(start)
        let deadline = Date().addingTimeInterval(60)
        while started.status != 0 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
            started = try CLIRunner.run(start)
        }
        #expect(started.status == 0, "\(started.stderr)")
        #expect(started.stdout.contains(#""ok":true"#), "\(started.stdout)")
        let stop = try CLIRunner.run(["publish", "job-stop", "--server", server.url, "--job-id", "515", "--cluster", "fritz", "--state", "completed",
                                      "--stop-time", "1700000060"], environment: ["CLUSTERD_PER_CLUSTER_SUBJECT": "1"])
        #expect(stop.status == 0, "\(stop.stderr)")
        let db = try Database(path: directory.appendingPathComponent("data/clusterd.db").path, readOnly: true)
        #expect(try db.prepare("SELECT job_state || ' ' || duration FROM job WHERE job_id = 515").first { $0.text(0) } == "completed 60")
    }
}
