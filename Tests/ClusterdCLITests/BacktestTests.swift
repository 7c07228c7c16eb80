import Bus
import BusTestSupport
import Foundation
import Model
import Store
import Testing

/// Issue 20 #5: `clusterd backtest` replays what a `clusterd run` recorded (node states,
/// buffered metrics from its checkpoint) through a new checks library and prints, per check,
/// what it would have raised and resolved beside the live library.
@Suite(.serialized, .timeLimit(.minutes(2))) final class BacktestTests: BusSuite {
    let fixture: BusFixture

    init() throws { fixture = try BusFixture("clusterd-backtest") }

    static func library(gpuThreshold: Int) -> String {
        CLIRunner.gpuChecks(threshold: gpuThreshold) + """
              - id: slurm_state
                source: {slurm_state: {}}
            """
    }

    /// The live library (GPU at 95), the candidate (at 85) and a configuration over them.
    func libraries() throws -> (config: URL, candidate: URL) {
        let live = directory.appendingPathComponent("live.yaml"), candidate = directory.appendingPathComponent("candidate.yaml")
        try Self.library(gpuThreshold: 95).write(to: live, atomically: true, encoding: .utf8)
        try Self.library(gpuThreshold: 85).write(to: candidate, atomically: true, encoding: .utf8)
        let config = try CLIRunner.alexConfig(server: server.url, directory: directory, checks: live)
        return (config, candidate)
    }

    @Test func aLowerThresholdWouldHaveFiredOnTheRecordedMetrics() async throws {
        let (config, candidate) = try libraries()
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

    /// With `--metrics-stream`, the metric lines come from a JetStream stream that keeps
    /// `cc.metrics.>` — history the running clusterd never buffered (it was not running then):
    /// two hours of a GPU at 90 three hours ago. The checkpoint alone has none of it.
    @Test func metricsFromAStreamReachWhereTheBuffersDoNot() async throws {
        let (config, candidate) = try libraries()
        let js = try JetStream(client)
        _ = try js.ensureStream(StreamConfig(name: "CC_METRICS", description: "metric history", subjects: ["cc.metrics.>"]))
        let start = Int(Date().timeIntervalSince1970) - 3 * 3600
        for minute in 0..<120 {
            try client.publish("cc.metrics.alex", Array("nv_temp,cluster=alex,hostname=a0603,type=accelerator,type-id=0 value=90 \(start + 60 * minute)\n".utf8))
        }
        try client.publish("cc.metrics.alex", Array("nv_temp,cluster=alex value=1\n".utf8))   // no hostname: refused, counted
        try client.flush()
        try await eventually("121 messages in the stream") { try js.streamMessageCount("CC_METRICS") == 121 }
        // A clusterd run makes the database (node states, job stops); stopped, it leaves its checkpoint.
        let run = try CLIRunner.launch(["run", "--config", config.path], log: directory.appendingPathComponent("clusterd.log"))
        let db = directory.appendingPathComponent("data/clusterd.db").path
        try await eventually("the database") {
            guard let database = try? Database(path: db, readOnly: true) else { return false }
            return (try? database.prepare("SELECT count(*) FROM node").first { $0.int(0) }) != nil
        }
        run.terminate()
        run.waitUntilExit()

        let streamed = try CLIRunner.run(["backtest", "--checks", candidate.path, "--config", config.path, "--since", "4h", "--metrics-stream", "CC_METRICS"])
        #expect(streamed.status == 0, "\(streamed.stderr)")
        let lines = streamed.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.contains(["gpu_temperature", "1/0", "0/0", "0/0"]), "\(streamed.stdout)")
        #expect(streamed.stdout.contains("121 messages of stream CC_METRICS: 120 samples in 1 series, 1 lines refused"), "\(streamed.stdout)")
        // The stream is left as it was: no consumer stays behind.
        try await eventually("no consumer left") {
            let info = try JSONValue.parse(try client.request(BusMessage(subject: "$JS.API.STREAM.INFO.CC_METRICS", data: [])).data)
            return info["state"]?["consumer_count"] == .integer(0)
        }
        // Bounded memory: with none to spare, one series still fits and the output says the bound.
        let bounded = try CLIRunner.run(["backtest", "--checks", candidate.path, "--config", config.path, "--since", "4h",
                                         "--metrics-stream", "CC_METRICS", "--memory-mb", "0"])
        #expect(bounded.stdout.contains("in 1 series, 1 lines refused (at most 1 series fit in --memory-mb 0)"), "\(bounded.stdout) \(bounded.stderr)")
        // The buffers' checkpoint never saw those lines.
        let buffered = try CLIRunner.run(["backtest", "--checks", candidate.path, "--config", config.path, "--since", "4h"])
        #expect(buffered.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.contains(["gpu_temperature", "0/0", "0/0", "0/0"]),
                "\(buffered.stdout) \(buffered.stderr)")
    }
}
