import Alerts
import API
import Bus
import Config
import Fleet
import Foundation
import Health
import Intake
import Integrations
import Jobs
import Logging
import MetricBuffers
import Model
import NATSServerProcess
import Nodes
import Observability
import Processing
import Prometheus
import Replication
import Store
import Threads

/// `/metrics`, `/healthz` and `/readyz`: what clusterd exposes about itself.
extension ClusterdService {
    /// `/metrics`, `/healthz`, `/readyz` on `observability.listen`. A failure to bind is
    /// logged and counted; clusterd runs on without it.
    func startObservability() {
        let listen = config.observability.listen
        guard !listen.isEmpty, let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else { return }
        do {
            let server = try ObservabilityServer(host: String(listen[..<colon]), port: port) { [weak self] request in
                guard let self else { return (503, "text/plain", Array("stopping\n".utf8)) }
                switch request.path {
                case "/metrics": return (200, "text/plain; version=0.0.4; charset=utf-8", self.scrape())
                case "/healthz": return (200, "text/plain", Array("ok\n".utf8))
                case "/readyz":
                    let problems = self.readiness()
                    guard problems.isEmpty else { return (503, "text/plain", Array((problems.joined(separator: "\n") + "\n").utf8)) }
                    // Ready, but parked messages want an operator's look (they never block anything).
                    let parked = (try? self.reader?.prepare("SELECT count(*) FROM outbox_parked").first { $0.int(0) }) ?? 0
                    return (200, "text/plain", Array("ready\n\(parked > 0 ? "note: \(parked) outbox messages parked (clusterd dlq parked)\n" : "")".utf8))
                default: return (404, "text/plain", Array("try /metrics, /healthz or /readyz\n".utf8))
                }
            }
            server.start()
            http = server
            logger.info("observability endpoint ready", metadata: ["url": "http://\(listen[..<colon]):\(server.port)/metrics"])
        } catch {
            counters.add("observability.bind_errors")
            logger.error("observability endpoint not started; clusterd runs on", metadata: ["error": "\(error)"])
        }
    }

    /// What keeps clusterd from being ready; empty when ready.
    func readiness() -> [String] {
        var problems: [String] = []
        // During start-up the parts below are being assigned on the starting thread.
        if let phase = startup.currentPhase { return ["starting: \(phase)"] }
        if connection?.isConnected != true { problems.append("not connected to NATS") }
        if loops.isEmpty || health == nil { problems.append("intake and health loops not running") }
        if (try? reader?.prepare("SELECT count(*) FROM schema_migration").first { $0.int(0) }) == nil { problems.append("database not readable") }
        if let reader, let failing = try? JobStage.archiveFailures(in: reader), failing.count > 0 {
            problems.append("\(failing.count) job archive entries cannot be written, retrying (last error: \(failing.lastError ?? "?"))")
        }
        if config.intake.mode != .core, let connection {
            for consumer in [config.jobConsumer, config.nodeConsumer] {
                if (try? JetStream(connection, timeout: .seconds(1)).consumerLag(stream: config.intake.stream, consumer: consumer)) == nil {
                    problems.append("consumer \(consumer) on \(config.intake.stream) not reachable")
                }
            }
        }
        return problems
    }

    /// The Prometheus exposition: counters and histograms as they move, gauges read now.
    func scrape() -> [UInt8] {
        let registry = counters.registry
        if startup.currentPhase != nil { return registry.emitToBuffer() }  // parts not assigned yet
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "clusterd", metricName: name, unitName: "", helpText: help), labels: labels)
        }
        processMetrics.collect(into: registry)
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "clusterd", metricName: "build_info", unitName: "",
                                                            helpText: "clusterd's version (the value is always 1)"),
                           labels: [("version", Self.version)]).set(Int64(1))
        gauge("nats_connected", "1 while connected to NATS").set(Int64(connection?.isConnected == true ? 1 : 0))
        if let writer {
            // A counter: the writer counts from its start (microseconds, reported as they grow).
            let busy = Int(writer.busy.secondsValue * 1e6)
            let grown = busy - writerBusyReported.exchange(busy)
            registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "clusterd", metricName: "writer_busy", unitName: "seconds_total",
                                                                  helpText: "time the one read-write database connection was held: its rate near 1 means every stage waits on it"))
                .increment(by: Double(max(0, grown)) / 1e6)
        }
        if let lease {
            gauge("publisher_lease_held", "1 while this replica holds the publisher lease (publishes derived messages)",
                  [("instance", config.ha.instance)]).set(Int64(lease.isHeld ? 1 : 0))
        }
        if let store = metricStore {
            let usage = store.usage
            gauge("metric_series", "metric series buffered").set(Int64(usage.series))
            gauge("metric_buffer_bytes", "bytes of buffered samples").set(Int64(usage.sampleBytes))
            // A counter (clusterd_metrics_samples_dropped_total): the store counts from its start.
            let dropped = usage.dropped - droppedReported.exchange(usage.dropped)
            if dropped > 0 { counters.add("metrics.samples_dropped", dropped) }
        }
        if let reader {
            let firing = (try? reader.prepare("SELECT severity, count(*) FROM alert WHERE status = 'firing' GROUP BY severity")
                .rows { ($0.text(0), $0.int(1)) }) ?? []
            for severity in ["CRIT", "WARN", "UNKNOWN"] {
                gauge("alerts_firing", "alerts firing now", [("severity", severity.lowercased())])
                    .set(firing.first { $0.0 == severity }?.1 ?? 0)
            }
            if let failing = try? JobStage.archiveFailures(in: reader) {
                gauge("archive_failing", "job archive entries that could not be written and wait for a retry").set(Int64(failing.count))
            }
            let pending: Int64? = try? reader.prepare("SELECT count(*) FROM outbox").first { $0.int(0) } ?? 0
            if let pending { gauge("outbox_pending", "committed messages not yet published").set(pending) }
            let parked: Int64? = try? reader.prepare("SELECT count(*) FROM outbox_parked").first { $0.int(0) } ?? 0
            if let parked {
                gauge("outbox_parked", "messages larger than the broker takes, kept in the outbox_parked table").set(parked)
            }
        }
        if config.intake.mode != .core, let connection, let js = try? JetStream(connection, timeout: .seconds(1)) {
            for consumer in [config.jobConsumer, config.nodeConsumer] {
                guard let lag = try? js.consumerLag(stream: config.intake.stream, consumer: consumer) else { continue }
                gauge("consumer_pending", "stream messages not yet delivered to the consumer (lag)", [("consumer", consumer)]).set(Int64(lag.pending))
                gauge("consumer_ack_pending", "messages delivered, not yet acknowledged", [("consumer", consumer)]).set(lag.ackPending)
            }
        }
        return registry.emitToBuffer()
    }
}
