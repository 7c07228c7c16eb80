import Prometheus
import Synchronization

/// Counters of what the pipeline did, by dotted name (`jobs.messages`, `jobs.events.started`,
/// `dead_letters.jobs.unknown_cluster`, ...), read by logs and tests, and the same figures in
/// Prometheus form (``registry``) for `/metrics`: `dead_letters.<stage>.<code>` becomes
/// `clusterd_dead_letters_total{stage,code}`, `<stage>.messages` `clusterd_messages_total{stage}`,
/// `jobs.events.<status>` `clusterd_job_events_total{status}`, anything else
/// `clusterd_<name with _>_total`.
public final class PipelineCounters: Sendable {
    private let values = Mutex<[String: Int]>([:])
    /// Each name's Prometheus counter, made once (the registry's lookup costs more than the add).
    private let exported = Mutex<[String: Counter]>([:])
    /// Every metric of this service instance, for the Prometheus exposition.
    public let registry = PrometheusCollectorRegistry()

    /// Empty counters.
    public init() {}

    /// Adds `n` to `name`.
    public func add(_ name: String, _ n: Int = 1) {
        values.withLock { $0[name, default: 0] += n }
        let counter = exported.withLock { known in
            if let c = known[name] { return c }
            let (metric, labels) = Self.prometheus(name)
            let c = registry.makeCounter(descriptor: metric, labels: labels)
            known[name] = c
            return c
        }
        counter.increment(by: Int64(n))
    }

    /// The value of `name`.
    public subscript(name: String) -> Int { values.withLock { $0[name] ?? 0 } }

    /// All counters.
    public var snapshot: [String: Int] { values.withLock { $0 } }

    /// Records one committed batch of `stage`: its size and how long it took.
    public func observeBatch(stage: String, messages: Int, duration: Duration) {
        registry.makeValueHistogram(descriptor: MetricNameDescriptor(namespace: "clusterd", metricName: "batch", unitName: "messages",
                                                                     helpText: "Messages per committed batch, by stage"),
                                    labels: [("stage", stage)],
                                    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]).record(Double(messages))
        registry.makeDurationHistogram(descriptor: MetricNameDescriptor(namespace: "clusterd", metricName: "batch", unitName: "seconds",
                                                                        helpText: "Time to apply and commit one batch, by stage"),
                                       labels: [("stage", stage)],
                                       buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                                 .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5)])
            .recordNanoseconds(duration.nanosecondsValue)
    }

    /// The Prometheus counter (name and help) and labels of a dotted counter name.
    static func prometheus(_ name: String) -> (MetricNameDescriptor, [(String, String)]) {
        func counter(_ base: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "clusterd", metricName: base, unitName: "total", helpText: help)
        }
        let parts = name.split(separator: ".").map(String.init)
        if parts.count == 3, parts[0] == "dead_letters" {
            return (counter("dead_letters", "Rejected lines and messages, by stage and code (each one is on clusterd.dlq.<stage>)"),
                    [("stage", parts[1]), ("code", parts[2])])
        }
        if parts.count == 2, parts[1] == "replays" { return (counter("replays", "Dead letters replayed, by stage"), [("stage", parts[0])]) }
        if parts.count == 2, parts[1] == "messages" { return (counter("messages", "Messages received, by stage"), [("stage", parts[0])]) }
        if parts.count == 3, parts[0] == "jobs", parts[1] == "events" {
            return (counter("job_events", "Job events applied, by status"), [("status", parts[2])])
        }
        if parts.count == 3, parts[0] == "alertmanager" {
            return (counter("alertmanager_alerts", "Alerts posted to Alertmanager by receiver: sent (new), resent (firing, every resend_seconds), errors (failed posts)"),
                    [("receiver", parts[1]), ("result", parts[2])])
        }
        if parts.count == 2, parts[0] == "nats", !name.hasPrefix("nats.embedded") {
            return (counter("nats_connection_events", "NATS connection events (connected, disconnected, reconnected, ...)"), [("event", parts[1])])
        }
        if parts.count == 3, parts[0] == "fleet", ["checks", "operations"].contains(parts[1]) {
            return (counter("fleet_\(parts[1])", parts[1] == "checks" ? "Fleet pull checks, by resulting health" : "Fleet operations ended, by status"),
                    [("status", parts[2])])
        }
        let flat = String(name.map { $0.isLetter || $0.isNumber ? $0 : "_" })
        return (counter(flat, Self.help[name] ?? "clusterd counter \(name)"), [])
    }

    /// HELP text of the counters without labels.
    static let help: [String: String] = [
        "outbox.publish_errors": "Outbox rows whose publication failed (retried)",
        "outbox.parked": "Outbox messages parked because they exceed the broker's max_payload",
        "kv.fleet.errors": "Fleet health KV mirror writes that failed",
        "kv.nodes.puts": "Node states mirrored into the clusterd_nodes KV bucket",
        "kv.nodes.errors": "Node-state KV mirror writes that failed",
        "observability.bind_errors": "Times the /metrics endpoint could not listen",
        "nats.embedded_exits": "Unexpected exits of the embedded nats-server (each restarted)",
        "metrics.lines": "Metric lines received on cc.metrics.>",
        "metrics.series_indexed": "Series the metric path indexed by their bytes (a new series, or a new tag order of one)",
        "metrics.checkpoints": "Metric buffer checkpoints written",
        "metrics.checkpoint_errors": "Metric buffer checkpoints that failed",
        "jobs.retention_removed": "Finished jobs removed by archive retention",
        "jobs.archived": "Job archive entries written",
        "jobs.archive_failed": "Job archive entries that failed (retried)",
        "intake.fetch_errors": "JetStream fetches that failed",
        "intake.batch_retries": "Batches or messages rolled back and redelivered (database busy or full, or a failed attempt)",
        "intake.failed_attempts": "Attempts at one redelivered message that failed with an error",
        "intake.poison_pills": "Messages dead-lettered as poison_pill after intake.max_attempts attempts",
        "health.ticks": "Health evaluation rounds, each with its alerts recorded and published",
        "health.samples": "Metric samples evaluated by the checks",
        "health.samples_dropped": "Metric samples the health queue dropped (full)",
        "fleet.heartbeats": "Fleet heartbeats received",
        "fleet.heartbeats_unknown": "Fleet heartbeats from unregistered servers",
        "alerts.transitions": "Alert transitions recorded",
        "alerts.resent_or_unsilenced": "Firing alerts re-sent or announced after a maintenance window",
        "alerts.record_errors": "Alert transitions that could not be recorded (retried)",
        "alerts.published": "Alert messages published",
        "metrics.samples_dropped": "Metric samples older than the buffers hold",
    ]
}

extension Duration {
    /// Whole nanoseconds.
    var nanosecondsValue: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}

/// Counter increments of a batch in flight: added to the counters when the batch commits,
/// dropped when it rolls back, so a batch that is retried counts once.
package struct BatchCounts {
    private var counts: [String: Int] = [:]

    /// No counts yet.
    package init() {}

    package mutating func add(_ name: String, _ n: Int = 1) { counts[name, default: 0] += n }

    package mutating func commit(to counters: PipelineCounters) {
        for (name, n) in counts { counters.add(name, n) }
        counts.removeAll()
    }

    package mutating func discard() { counts.removeAll() }
}
