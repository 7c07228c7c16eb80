import Alerts
import Bus
import BusTestSupport
import Foundation
import Health
@testable import Intake
import Logging
import MetricBuffers
import Model
import Nodes
@testable import Pipeline
@testable import Processing
import Store
import Testing

/// Issue 17: a recorded stream of job and node events, with the metric events before it,
/// replayed through the stages' decisions and table code — no bus, no clock, no threads —
/// gives the same job, node and alert tables as the running service did. The times come from the stream (the broker's arrival time), so nothing of the
/// machine the service ran on leaks into what it decided.
@Suite(.serialized, .timeLimit(.minutes(4))) final class ReplayTests: BusSuite {
    let fixture: BusFixture

    init() throws { fixture = try BusFixture("clusterd-replay") }

    static let checks = """
        checks:
          - id: slurm_state
            source: {slurm_state: {mixed: OK, allocated: OK, idle: OK, reserved: OK}}
        """

    @Test func aRecordedStreamReplayedThroughTheDecisionsGivesTheSameTables() async throws {
        let checksFile = directory.appendingPathComponent("checks.yaml")
        try Self.checks.write(to: checksFile, atomically: true, encoding: .utf8)
        let topology = Repository.path("config/topology.yaml")
        let (service, config) = try ClusterdService.started(server: server.url, directory: directory.appendingPathComponent("live")) {
            $0.health.checks = checksFile.path
            $0.health.topology = topology
            // No evaluation ticks while the stream is applied: a tick runs on the wall clock,
            // between observations that carry the stream's (earlier) times, and what it decides
            // (a resolve one tick later) is the clock's, not the stream's.
            $0.health.evaluationInterval = .seconds(3600)
        }
        let seed = UInt64.random(in: 1...UInt64.max)
        let now = Int64(Date().timeIntervalSince1970)
        var events = RandomEvents(seed: seed, now: now)
        // Metric events first (core NATS, at-most-once, so not in the stream): the node stage
        // reads each node's metric health from the buffers they fill. Waiting until all are
        // buffered makes the order against the stream's node events the same in the replay.
        let metrics = Self.metricMessages(now: now)
        for body in metrics { try client.publish("cc.metrics.fritz", body) }
        try client.flush()
        let metricLines = metrics.reduce(0) { $0 + $1.split(separator: 0x0A).count }
        try await eventually("every metric line buffered", state: { "\(service.counters["metrics.lines"]) of \(metricLines)" }) {
            service.counters["metrics.lines"] == metricLines
        }
        let js = try JetStream(client)
        let total = 1500
        for i in 1...total {
            let (subject, body) = events.message()
            _ = try js.publish(BusMessage(subject: subject, data: body), messageID: "replay-\(i)")
        }
        let live = try Database(path: config.databasePath, readOnly: true)
        try await eventually("every message applied", timeout: 120, state: { "\(service.counters.snapshot)" }) {
            try live.prepare("SELECT count(*) FROM applied_message").first { $0.int(0) } == Int64(total)
        }
        // The health loop has recorded what those batches observed: two questions to the loop
        // come back only after the iteration that recorded the earlier inputs.
        for _ in 0..<2 { _ = service.health?.inspect { _ in true } }
        try await eventually("the outbox drained") { try live.prepare("SELECT count(*) FROM outbox").first { $0.int(0) } == 0 }
        service.stop()

        // The recording: the stream as any consumer reads it, with the broker's times.
        try js.ensureConsumer(stream: config.intake.stream, ConsumerConfig(durable: "replay", description: "replay test"))
        let subscription = try js.pullSubscription(stream: config.intake.stream, consumer: "replay")
        var recorded: [IncomingMessage] = []
        while recorded.count < total {
            let batch = try subscription.fetch(batch: 500, timeout: .seconds(5))
            for m in batch {
                recorded.append(IncomingMessage(subject: m.message.subject, data: m.message.data, messageID: m.message.header("Nats-Msg-Id"),
                                                origin: "\(config.intake.stream):\(m.delivery.streamSequence)",
                                                receivedAt: m.delivery.timestamp / 1_000_000_000))
                try m.ack()
            }
        }
        #expect(recorded.count == total)

        // The replay: a fresh database, the same clusters, checks and topology.
        let env = try TestEnvironment()
        // The node stage's health input as the service read it: its metric buffers, filled by
        // the same metric events through the same decoding and admission.
        let observed = ObservationLog()
        var logger = Logger(label: "replay")
        logger.logLevel = .critical
        let clusters = Reloadable(try ClusterRegistry.load(archiveRoot: env.config.archivePath))
        let store = MetricStore(resolution: config.metrics.resolution.wholeSeconds, retention: config.metrics.retention.wholeSeconds)
        let decoder = MetricDecoder(defaultCluster: "", indexLimit: 1000) { s in
            store.admit(s.seriesKey, knownHost: true).mapError { .init(code: "series_limit", reason: $0.reason) }
        }
        for body in metrics {
            let out = decoder.decode(BusMessage(subject: "cc.metrics.fritz", data: body), now: now)
            store.write(out.samples)
            #expect(out.letters.isEmpty && !out.samples.isEmpty)
        }
        // A stopped job's footprint comes from the same buffers, as in the service.
        env.processor.dataBuilder = JobDataBuilder(store: store)
        let nodes = NodeProcessor(database: env.processor.database, clusters: clusters, probe: MetricHealthProbe(store: store, clusters: clusters),
                                  config: env.config, counters: env.counters, logger: logger, onCommit: { observed.append($0) })
        let engine = HealthEngine(library: try CheckLibrary(contentsOf: checksFile.path), topology: try Topology(contentsOf: topology), now: 0)
        let book = AlertBook(database: env.processor.database, prefix: config.health.alertPrefix,
                             resendInterval: config.health.resendInterval.wholeSeconds)
        for message in recorded {
            let before = observed.all.count
            _ = try (message.subject == config.intake.jobSubject ? env.processor : nodes).process([message])
            for o in observed.all.dropFirst(before) {
                engine.observe(NodeStatus(cluster: o.cluster, hostname: o.hostname, flags: o.slurm.flags), now: o.at)
            }
            try book.record(engine.takeTransitions(), now: message.receivedAt)
        }
        try env.processor.archivePending()

        let replayed = env.processor.database
        let tables: [(String, String)] = [
            ("job", "SELECT * FROM job ORDER BY id"),
            // An archive entry that failed says why (and is retried).
            ("clusterd_archive_retry", "SELECT job, attempts, last_error FROM clusterd_archive_retry ORDER BY job"),
            ("clusterd_job_event", "SELECT * FROM clusterd_job_event ORDER BY job"),
            ("clusterd_held_stop", "SELECT job_id, cluster, start_time, event, origin, raw, received_at FROM clusterd_held_stop ORDER BY id"),
            ("tag", "SELECT id, tag_type, tag_name, tag_scope FROM tag ORDER BY id"),
            ("jobtag", "SELECT job_id, tag_id FROM jobtag ORDER BY job_id, tag_id"),
            ("node", "SELECT * FROM node ORDER BY id"),
            ("node_state", "SELECT * FROM node_state ORDER BY id"),
            // The two stages' letters interleave differently in one table: compared by content.
            ("dead_letter", "SELECT stage, subject, message_id, origin, line, col, code, reason, raw, received_at FROM dead_letter ORDER BY origin, line, col, code, reason"),
            ("alert", """
                SELECT fingerprint, check_id, cluster, entity, component, rack, room, site, labels, summary, severity, status,
                       starts_at, ends_at, last_problem_at, value, flapping, sequence, silenced, announced FROM alert ORDER BY fingerprint
                """),
            ("alert_transition", "SELECT * FROM alert_transition ORDER BY fingerprint, sequence"),
        ]
        for (name, sql) in tables {
            let a = try Self.dump(live, sql), b = try Self.dump(replayed, sql)
            let same = a == b
            #expect(same, "seed \(seed): table \(name) differs (\(a.count) rows live, \(b.count) replayed); first difference: \(zip(a, b).first { $0 != $1 }.map { "\($0.0)\n  vs \($0.1)" } ?? "in length: \(a.count > b.count ? a[b.count] : b[min(a.count, b.count - 1)])")")
        }
        // Not an empty comparison: the stream made jobs, node states, letters and alerts.
        for table in ["job", "node_state", "dead_letter", "alert_transition"] {
            #expect(try Self.dump(live, "SELECT count(*) FROM \(table)") != [["0"]], "seed \(seed): no \(table) rows")
        }
        // ... and the metric events decided node health: full, partial and failed all occur.
        #expect(try Self.dump(live, "SELECT DISTINCT health_state FROM node_state ORDER BY 1") == [["failed"], ["full"], ["partial"]], "seed \(seed)")
    }

    /// cc-metric-collector messages for the hosts the random events use (f0101...f0180): a
    /// quarter report every metric of fritz fresh, a quarter lack two, a quarter report
    /// cpu_load an hour late (degraded), a quarter nothing (missing).
    static func metricMessages(now: Int64) -> [[UInt8]] {
        let fresh = (now - 30) * 1_000_000_000, late = (now - 3600) * 1_000_000_000
        return (0..<80).compactMap { i -> [UInt8]? in
            let host = "f0\(101 + i)"
            func line(_ metric: String, _ type: String, _ time: Int64) -> String {
                "\(metric),cluster=fritz,hostname=\(host),type=\(type)\(type == "node" ? "" : ",type-id=0") value=\(i % 7 + 1).5 \(time)"
            }
            let lines: [String]
            switch i % 4 {
            case 0: lines = [line("cpu_load", "node", fresh), line("cpu_user", "hwthread", fresh), line("mem_used", "node", fresh),
                             line("flops_any", "hwthread", fresh), line("mem_bw", "socket", fresh), line("net_bw", "node", fresh)]
            case 1: lines = [line("cpu_load", "node", fresh), line("cpu_user", "hwthread", fresh), line("mem_used", "node", fresh),
                             line("flops_any", "hwthread", fresh)]
            case 2: lines = [line("cpu_load", "node", late), line("cpu_user", "hwthread", fresh), line("mem_used", "node", fresh),
                             line("flops_any", "hwthread", fresh), line("mem_bw", "socket", fresh), line("net_bw", "node", fresh)]
            default: return nil
            }
            return Array(lines.joined(separator: "\n").utf8)
        }
    }

    /// Every row of `sql` as text.
    static func dump(_ db: Database, _ sql: String) throws -> [[String]] {
        try db.prepare(sql).rows([]) { row in (0..<row.columnCount).map { row.optionalText($0) ?? "NULL" } }
    }
}
