import ArgumentParser
import Bus
import Config
import Foundation
import Health
import MetricBuffers
import Processing
import Store

/// `clusterd backtest`: what a new checks library would have raised and resolved on the inputs
/// clusterd recorded, beside the live library (replayed and as recorded).
struct BacktestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract: "Replay the recorded node states, job stops and buffered metrics through a checks library and compare it with the live one.",
        discussion: """
            Reads <data_dir>/clusterd.db (read-only) and <data_dir>/metrics.checkpoint (written every \
            metrics.checkpoint_interval_seconds and at shutdown), so it runs beside a live clusterd or after it. The \
            replay starts with nothing firing and steps one metric resolution at a time; metrics reach back as far as \
            the buffers do (metrics.retention_hours). With --metrics-stream, the metric lines come instead from a JetStream \
            stream that keeps metrics.subject (e.g. nats stream add CC_METRICS --subjects 'cc.metrics.>' --max-age 30d), \
            as far back as it keeps them; the stream is read through an ephemeral consumer and left as it was.
            """
    )

    @Option(help: "The checks library to try.") var checks: String
    @Option(help: "How far back: 90m, 24h, 7d.") var since = "24h"
    @Option(help: "clusterd's configuration (its data_dir, live checks and topology).") var config = "config/clusterd.yaml"
    @Option(name: .customLong("data-dir"), help: "Data directory; overrides storage.data_dir.") var dataDir: String?
    @Option(name: .customLong("metrics-stream"), help: "Read the metric lines from this JetStream stream instead of the buffers' checkpoint.")
    var metricsStream: String?
    @Option(help: "NATS server URL for --metrics-stream (default: nats.servers, $NATS_URL or nats://127.0.0.1:4222).") var server: String?
    @Option(name: .customLong("memory-mb"), help: "Memory for the series read from --metrics-stream (each holds the whole window).")
    var memoryMB = 2048

    func run() throws {
        var settings = try ClusterdConfig.load(path: config)
        if let dataDir { settings.storage.dataDir = dataDir }
        guard let seconds = CheckLibrary.seconds(since) else { throw ValidationError("--since \"\(since)\" is not a duration like 90m, 24h, 7d") }
        let candidate = try CheckLibrary(contentsOf: checks)
        let live = try settings.health.checks.map { try CheckLibrary(contentsOf: $0) } ?? CheckLibrary([])
        let topology = try settings.health.topology.map { try Topology(contentsOf: $0) } ?? Topology()
        guard FileManager.default.fileExists(atPath: settings.databasePath) else {
            throw ValidationError("\(settings.databasePath): no database (is storage.data_dir right?)")
        }
        let database = try Database(path: settings.databasePath, readOnly: true)
        let now = Int64(Date().timeIntervalSince1970)
        var store: MetricStore?
        var source = "no metric checkpoint (node states and job stops only)"
        let limits = MetricStore.Limits(total: settings.metrics.maxSeries, perCluster: settings.metrics.maxSeriesPerCluster,
                                        unknownHosts: settings.metrics.maxUnknownHostSeries)
        if let metricsStream {
            // Each series holds the whole window: bounded by --memory-mb (a month at one sample a
            // minute is 173 kB a series), the rest refused and counted, not an exhausted machine.
            let slots = Int64(seconds / max(1, settings.metrics.resolution.wholeSeconds)) + 2
            let fit = max(1, Int(Int64(memoryMB) * 1_048_576 / (slots * Int64(MetricStore.bytesPerSample))))
            let bounded = MetricStore.Limits(total: min(limits.total, fit), perCluster: limits.perCluster, unknownHosts: limits.unknownHosts)
            let connection = try QueryCommand.connect(server ?? settings.nats.servers.first, name: "clusterd-backtest", timeout: 3)
            defer { connection.close() }
            let (buffers, read) = try Backtest.metrics(stream: metricsStream, subject: settings.metrics.subject, on: try JetStream(connection),
                                                       from: now - seconds, to: now, resolution: settings.metrics.resolution.wholeSeconds,
                                                       limits: bounded, defaultCluster: settings.metrics.defaultCluster)
            store = buffers
            source = "\(read.messages) messages of stream \(metricsStream): \(read.samples) samples in \(buffers.allSeries.count) series"
                + (read.rejected > 0 ? ", \(read.rejected) lines refused" : "")
                + (buffers.allSeries.count >= bounded.total ? " (at most \(bounded.total) series fit in --memory-mb \(memoryMB))" : "")
        } else if FileManager.default.fileExists(atPath: settings.metricCheckpointPath) {
            let buffers = MetricStore(resolution: settings.metrics.resolution.wholeSeconds, retention: settings.metrics.retention.wholeSeconds,
                                      limits: limits)
            _ = try buffers.restore(from: settings.metricCheckpointPath, now: now)
            store = buffers
            source = "\(buffers.allSeries.count) buffered series"
        }
        let backtest = Backtest(database: database, store: store, topology: topology, from: now - seconds, to: now)
        let tried = try backtest.run(candidate), replayed = try backtest.run(live), recorded = try backtest.recorded()
        let (states, stops) = try backtest.inputs()
        print("back-test of \(checks) over the last \(since): \(states) node-state changes, \(stops) job stops, \(source)")
        print("check".padding(toLength: 28, withPad: " ", startingAt: 0) + "   new fired/resolved   live replayed   live recorded")
        let ids = candidate.checks.map(\.id) + live.checks.map(\.id).filter { id in !candidate.checks.contains { $0.id == id } }
        for id in ids {
            func cell(_ c: Backtest.Counts?, _ width: Int) -> String {
                let text = c.map { "\($0.fired)/\($0.resolved)" } ?? "0/0"
                return String(repeating: " ", count: max(0, width - text.count)) + text
            }
            let inNew = candidate.checks.contains { $0.id == id }, inLive = live.checks.contains { $0.id == id }
            print(id.padding(toLength: 28, withPad: " ", startingAt: 0) + "   " + (inNew ? cell(tried[id], 18) : "                 -")
                  + "   " + (inLive ? cell(replayed[id], 13) : "            -") + "   " + cell(recorded[id], 13))
        }
    }
}
