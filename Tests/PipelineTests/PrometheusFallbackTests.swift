import Archive
import Bus
import BusTestSupport
import Config
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Model
@testable import Pipeline
import Store
import Testing

/// Issue 20 #6: a job the metric buffers do not cover gets its data.json and statistics from
/// a configured Prometheus (`query_range`), here Debian's `prometheus` scraping a small
/// exporter (a static `/metrics` served by python's http.server) every second.
@Suite(.serialized, .timeLimit(.minutes(2)), .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus"), "needs Debian's prometheus"))
final class PrometheusFallbackTests: BusSuite {
    let fixture: BusFixture

    init() throws { fixture = try BusFixture("clusterd-prometheus") }

    /// A GET's body (nil on any failure), waiting at most 5 s.
    static func get(_ url: String) -> [UInt8]? {
        final class Box: @unchecked Sendable { var body: [UInt8]? }
        let box = Box(), done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: URL(string: url)!) { data, response, _ in
            if (response as? HTTPURLResponse)?.statusCode == 200 { box.body = data.map { Array($0) } }
            done.signal()
        }.resume()
        return done.wait(timeout: .now() + 5) == .success ? box.body : nil
    }

    func spawn(_ arguments: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent(log).path, contents: nil)
        let out = try FileHandle(forWritingTo: directory.appendingPathComponent(log))
        p.standardOutput = out
        p.standardError = out
        try ChildProcess.run(p)
        return p
    }

    @Test func aJobTheBuffersDoNotCoverGetsItsMetricsFromPrometheus() async throws {
        let exporter = directory.appendingPathComponent("exporter")
        try FileManager.default.createDirectory(at: exporter, withIntermediateDirectories: true)
        try "# TYPE node_load1 gauge\nnode_load1{host=\"f0101\"} 2.5\nnode_load1{host=\"f0102\"} 7\n"
            .write(to: exporter.appendingPathComponent("metrics"), atomically: true, encoding: .utf8)
        let exporterPort = freeLoopbackPort(), prometheusPort = freeLoopbackPort()
        let http = try spawn(["python3", "-m", "http.server", String(exporterPort), "--bind", "127.0.0.1", "--directory", exporter.path], log: "exporter.log")
        // SIGKILL: the test runner's children inherit its blocked signals, SIGTERM included.
        defer { kill(http.processIdentifier, SIGKILL); http.waitUntilExit() }
        let config = directory.appendingPathComponent("prometheus.yml")
        try """
            global: {scrape_interval: 1s}
            scrape_configs:
              - job_name: exporter
                static_configs: [{targets: ["127.0.0.1:\(exporterPort)"]}]
            """.write(to: config, atomically: true, encoding: .utf8)
        let prometheus = try spawn(["prometheus", "--config.file=\(config.path)", "--storage.tsdb.path=\(directory.appendingPathComponent("tsdb").path)",
                                    "--web.listen-address=127.0.0.1:\(prometheusPort)"], log: "prometheus.log")
        defer { kill(prometheus.processIdentifier, SIGKILL); prometheus.waitUntilExit() }
        let url = "http://127.0.0.1:\(prometheusPort)"
        try await eventually("Prometheus scraping the exporter", timeout: 60, state: {
            (try? String(contentsOf: self.directory.appendingPathComponent("prometheus.log"), encoding: .utf8))?.suffix(400).description ?? ""
        }) {
            guard let data = Self.get("\(url)/api/v1/query?query=node_load1"),
                  let v = try? JSONValue.parse(data), case .array(let result)? = v["data"]?["result"] else { return false }
            return result.count == 2
        }

        var settings = ClusterdConfig()
        settings.nats.servers = [server.url]
        settings.storage.dataDir = directory.appendingPathComponent("data").path
        settings.jobs.clusterFiles = [Repository.path("config/clusters/fritz/cluster.json")]
        settings.observability.listen = ""
        settings.metrics.resolution = .seconds(10)
        settings.metrics.prometheusURL = url
        settings.metrics.prometheusQueries = ["cpu_load": #"node_load1{host="{host}"}"#]
        var logger = Logger(label: "prometheus-test")
        logger.logLevel = .critical
        let service = ClusterdService(config: settings, logger: logger)
        try service.start()
        defer { service.stop() }
        // Nothing of f0101 and f0102 is in the buffers: clusterd has just started. The job starts
        // at a sample Prometheus holds (the newest, rounded up: its look-back finds it).
        let newest = try #require(Self.get("\(url)/api/v1/query?query=node_load1").flatMap { try? JSONValue.parse($0) })
        guard case .array(let result)? = newest["data"]?["result"], case .array(let sample)? = result.first?["value"],
              let sampledAt = sample.first?.numberValue else { throw TestFailure("no sample: \(newest)") }
        let start = Int(sampledAt.rounded(.up))
        let events = #"""
            job,function=start_job event="{\"jobId\":9601,\"user\":\"u\",\"project\":\"p\",\"cluster\":\"fritz\",\"numNodes\":2,\"resources\":[{\"hostname\":\"f0101\"},{\"hostname\":\"f0102\"}],\"startTime\":\#(start)}" 1
            job,function=stop_job event="{\"jobId\":9601,\"cluster\":\"fritz\",\"jobState\":\"completed\",\"stopTime\":\#(start + 1)}" 1
            """#
        _ = try JetStream(client).publish(BusMessage(subject: "cc.job.event", data: Array(events.utf8)), messageID: "prometheus-9601")
        let db = try Database(path: directory.appendingPathComponent("data/clusterd.db").path, readOnly: true)
        try await eventually("job 9601 archived") { try db.prepare("SELECT monitoring_status FROM job WHERE job_id = 9601").first { $0.int(0) } == 3 }
        let dir = try ArchiveWriter(root: directory.appendingPathComponent("data/archive").path).directory(cluster: "fritz", jobId: 9601, startTime: Int64(start))
        let meta = try JSONValue.parse(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/meta.json"))))
        // Σ node avg / numNodes: (2.5 + 7) / 2; max 7; the other metrics have no query: zeros, as without data.
        #expect(meta["statistics"]?["cpu_load"]?["avg"] == .double(4.75), "\(meta.jsonText)")
        #expect(meta["statistics"]?["cpu_load"]?["max"] == .integer(7))
        #expect(meta["statistics"]?["mem_used"]?["max"] == .integer(0))
        #expect(service.counters["metrics.prometheus_queries"] == 2)
    }
}
