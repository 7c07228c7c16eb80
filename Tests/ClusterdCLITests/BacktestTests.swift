import Bus
import BusTestSupport
import Foundation
import Store
import Testing

/// Issue 20 #5: `clusterd backtest` replays what a `clusterd run` recorded (node states,
/// buffered metrics from its checkpoint) through a new checks library and prints, per check,
/// what it would have raised and resolved beside the live library.
@Suite(.serialized, .timeLimit(.minutes(2))) final class BacktestTests: BusSuite {
    let fixture: BusFixture

    init() throws { fixture = try BusFixture("clusterd-backtest") }

    static func library(gpuThreshold: Int) -> String {
        """
        checks:
          - id: gpu_temperature
            scope: component
            source: {metric: {name: nv_temp, match: {type: accelerator}}}
            rules: [{op: ">=", value: \(gpuThreshold), severity: CRIT}]
          - id: slurm_state
            source: {slurm_state: {}}
        """
    }

    @Test func aLowerThresholdWouldHaveFiredOnTheRecordedMetrics() async throws {
        let live = directory.appendingPathComponent("live.yaml"), candidate = directory.appendingPathComponent("candidate.yaml")
        try Self.library(gpuThreshold: 95).write(to: live, atomically: true, encoding: .utf8)
        try Self.library(gpuThreshold: 85).write(to: candidate, atomically: true, encoding: .utf8)
        let config = directory.appendingPathComponent("clusterd.yaml")
        try """
            nats: {servers: ["\(server.url)"]}
            storage: {data_dir: "\(directory.appendingPathComponent("data").path)"}
            jobs: {cluster_files: ["\(CLIRunner.packageRoot.appendingPathComponent("config/clusters/alex/cluster.json").path)"]}
            health:
              checks: "\(live.path)"
              topology: "\(CLIRunner.packageRoot.appendingPathComponent("config/topology.yaml").path)"
              evaluation_interval_ms: 200
            observability: {listen: ""}
            log_level: warning
            """.write(to: config, atomically: true, encoding: .utf8)
        let log = directory.appendingPathComponent("clusterd.log")
        let run = try CLIRunner.launch(["run", "--config", config.path], log: log)
        defer { if run.isRunning { run.terminate(); run.waitUntilExit() } }
        let db = directory.appendingPathComponent("data/clusterd.db").path
        func firing() -> Int64 {
            guard let database = try? Database(path: db, readOnly: true) else { return 0 }
            return (try? database.prepare("SELECT count(*) FROM alert WHERE status = 'firing'").first { $0.int(0) }) ?? 0
        }
        // a0603's GPU at 90 (under the live 95, over the candidate's 85), a0604's at 99, a0605 down.
        let js = try JetStream(client)
        let deadline = Date().addingTimeInterval(60)
        while firing() < 2 && Date() < deadline {
            let t = Int(Date().timeIntervalSince1970)
            try client.publish("cc.metrics.alex", Array("""
                nv_temp,cluster=alex,hostname=a0603,type=accelerator,type-id=0 value=90 \(t)
                nv_temp,cluster=alex,hostname=a0604,type=accelerator,type-id=0 value=99 \(t)

                """.utf8))
            _ = try? js.publish(BusMessage(subject: "cc.node.state", data: Array(#"nodestate event="{\"cluster\":\"alex\",\"nodes\":[{\"hostname\":\"a0605\",\"states\":[\"DOWN\"]}]}" 1"#.utf8)),
                                messageID: "backtest-down")
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(firing() == 2, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        run.terminate()          // SIGTERM: the metric checkpoint is written on the way out
        run.waitUntilExit()
        let result = try CLIRunner.run(["backtest", "--checks", candidate.path, "--config", config.path, "--since", "1h"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        // check, new fired/resolved, live replayed, live recorded
        #expect(lines.contains(["gpu_temperature", "2/0", "1/0", "1/0"]), "\(result.stdout)")
        #expect(lines.contains(["slurm_state", "1/0", "1/0", "1/0"]), "\(result.stdout)")
        #expect(result.stdout.contains("1 node-state changes, 0 job stops, 2 buffered series"), "\(result.stdout)")
    }
}
