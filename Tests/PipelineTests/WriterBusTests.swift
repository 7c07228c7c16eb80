import Bus
import BusTestSupport
import Config
import Foundation
import Logging
import Model
import Pipeline
import Store
import Testing

/// Issue 17: one read-write connection. With SQLite's busy timeout at 0 any second writer
/// would fail at once with SQLITE_BUSY ("database is locked"); job and node batches, alert
/// transitions, fleet heartbeats and maintenance windows written at the same moment all
/// commit, none retried.
@Suite(.timeLimit(.minutes(3))) final class WriterBusTests: BusSuite {
    typealias LogSink = FleetBusTests.LogSink
    let fixture: BusFixture

    init() throws { fixture = try BusFixture("clusterd-writer") }

    @Test func stagesWritingAtOnceNeverMeetSQLiteBusy() async throws {
        let checks = directory.appendingPathComponent("checks.yaml")
        try """
            checks:
              - id: hot
                source: {metric: {name: temp}}
                rules: [{op: ">=", value: 90, severity: CRIT}]
              - id: slurm_state
                source: {slurm_state: {mixed: OK}}
            """.write(to: checks, atomically: true, encoding: .utf8)
        var config = ClusterdConfig()
        config.nats.servers = [server.url]
        config.storage.dataDir = directory.appendingPathComponent("data").path
        config.storage.busyTimeout = .zero
        config.jobs.clusterFiles = [Repository.path("config/clusters/fritz/cluster.json")]
        config.health.topology = Repository.path("config/topology.yaml")
        config.health.checks = checks.path
        config.health.evaluationInterval = .milliseconds(50)
        config.observability.listen = ""
        let logs = LogSink()
        let service = ClusterdService(config: config, logger: Logger(label: "writer-test") { _ in FleetBusTests.SinkHandler(sink: logs) })
        try service.start()
        defer { service.stop() }
        let registered = try JSONValue.parse(try client.request(BusMessage(subject: "fleet.acme.api.register", data: Array(#"{"name":"web1"}"#.utf8)),
                                                                timeout: .seconds(10)).data)
        #expect(registered["server"] != nil, "\(registered)")

        let jobs = 1500, nodeMessages = 300
        let now = Int(Date().timeIntervalSince1970)
        let url = server.url
        async let jobsDone: Void = Task.detached {
            let c = try BusConnection(ConnectionOptions(servers: [url], name: "jobs"))
            let js = try JetStream(c)
            for id in 1...jobs {
                let lines = #"""
                    job,function=start_job event="{\"jobId\":\#(id),\"user\":\"u\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":1,\"resources\":[{\"hostname\":\"f0101\"}],\"startTime\":\#(now - 900)}" 1
                    job,function=stop_job event="{\"jobId\":\#(id),\"cluster\":\"fritz\",\"jobState\":\"completed\",\"stopTime\":\#(now - 300)}" 1
                    """#
                _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(lines.utf8)), messageID: "w-\(id)")
            }
        }.value
        async let nodesDone: Void = Task.detached {
            let c = try BusConnection(ConnectionOptions(servers: [url], name: "nodes"))
            let js = try JetStream(c)
            for i in 1...nodeMessages {
                let state = i % 2 == 0 ? #"\"IDLE\",\"DRAIN\""# : #"\"IDLE\""#
                let body = #"nodestate event="{\"cluster\":\"fritz\",\"nodes\":[{\"hostname\":\"f01\#(10 + i % 40)\",\"states\":[\#(state)]}]}" 1"#
                _ = try js.publish(BusMessage(subject: "cc.node.state", data: Array(body.utf8)), messageID: "n-\(i)")
            }
        }.value
        async let othersDone: Void = Task.detached {
            let c = try BusConnection(ConnectionOptions(servers: [url], name: "metrics-fleet-admin"))
            for i in 1...400 {
                let t = Int(Date().timeIntervalSince1970)
                try c.publish("cc.metrics.fritz", Array("temp,cluster=fritz,hostname=f0102 value=\(i % 2 == 0 ? 99 : 20) \(t)\n".utf8))
                try c.publish("fleet.acme.web1.heartbeat", Array(#"{"version":"1.\#(i)"}"#.utf8))
                if i % 40 == 0 {
                    _ = try c.request(BusMessage(subject: "clusterd.admin.maintenance.create", headers: ["Clusterd-Actor": ["load-test"]],
                                                 data: Array(#"{"scope":"node","target":"f09\#(i)","reason":"load test","durationSeconds":60}"#.utf8)))
                }
                if i % 10 == 0 { try c.flush() }
            }
            try c.flush()
        }.value
        _ = try await (jobsDone, nodesDone, othersDone)

        let db = try Database(path: directory.appendingPathComponent("data/clusterd.db").path, readOnly: true)
        func count(_ sql: String) -> Int64 { (try? db.prepare(sql).first { $0.int(0) }) ?? -1 }
        try await eventually("every job stopped", state: { "\(count("SELECT count(*) FROM job WHERE job_state = 'completed'"))" }) {
            count("SELECT count(*) FROM job WHERE job_state = 'completed'") == Int64(jobs)
        }
        try await eventually("every node-state message", state: { "\(service.counters.snapshot)" }) {
            service.counters.snapshot["nodes.messages", default: 0] >= nodeMessages
        }
        #expect(count("SELECT count(*) FROM alert_transition") > 0)
        #expect(count("SELECT count(*) FROM maintenance") == 10)
        let counters = service.counters.snapshot
        for bad in ["intake.batch_retries", "alerts.record_errors", "intake.failed_attempts"] { #expect(counters[bad] == nil, "\(bad): \(counters)") }
        #expect(!logs.all.contains("database is locked"), "\(logs.all.components(separatedBy: "\n").filter { $0.contains("locked") }.prefix(5))")
        #expect(!logs.all.contains("heartbeat not stored"))
    }
}
