import Bus
import Config
import Foundation
import Intake
import Logging
import Model
import Observability
import Threads

/// Forwards alerts to an Alertmanager (API v2, `POST /api/v2/alerts`) from a durable consumer
/// of the alert stream, so nothing is lost while Alertmanager is down: a batch is acked only
/// after Alertmanager accepted it, and nak'ed with a growing delay otherwise. Firing alerts
/// carry `endsAt` four re-send intervals ahead (clusterd re-sends them), resolved ones their
/// resolve time — Alertmanager's own contract. The firing alerts it forwarded are posted
/// again every `resend_seconds` (60 by default, as Prometheus does), so an Alertmanager that
/// restarted with an empty state has them back within a minute.
public final class AlertmanagerForwarder: @unchecked Sendable {
    let receiver: ClusterdConfig.AlertmanagerSettings.Receiver
    let subscription: PullSubscription
    let probe: HTTPProbe
    let counters: PipelineCounters
    let logger: Logger
    private let worker = WorkerThread()
    /// Firing alerts forwarded, by fingerprint (a resolve removes its alert).
    private var firing: [String: JSONValue] = [:]
    private let endsAhead: Int64
    /// Whether this replica forwards (nil: always). Replicas share the durable consumer, so
    /// the one that takes over goes on from the last alert acknowledged.
    public var forwards: (@Sendable () -> Bool)?

    /// Ensures the durable consumer `clusterd_am_<name>` on the alert stream and binds it.
    public init(receiver: ClusterdConfig.AlertmanagerSettings.Receiver, connection: BusConnection, config: ClusterdConfig,
                counters: PipelineCounters, logger: Logger) throws {
        self.receiver = receiver
        let js = try JetStream(connection)
        let durable = "clusterd_am_\(receiver.name)"
        try js.ensureConsumer(stream: config.health.alertStream, ConsumerConfig(
            durable: durable, description: "clusterd: alerts forwarded to Alertmanager \(receiver.url)",
            ackWait: max(.seconds(30), receiver.timeout * 3), maxAckPending: 1000,
            filterSubject: "\(config.health.alertPrefix).>"))
        subscription = try js.pullSubscription(stream: config.health.alertStream, consumer: durable)
        probe = HTTPProbe(timeout: receiver.timeout.secondsValue)
        endsAhead = 4 * max(receiver.resendInterval, config.health.resendInterval).wholeSeconds
        self.counters = counters
        self.logger = logger
    }

    /// An alert message in Alertmanager's posted-alert shape, with its fingerprint and whether
    /// it fires (for the re-send); nil when it is not forwarded here.
    func posted(_ data: [UInt8]) -> (alert: JSONValue, fingerprint: String?, firing: Bool)? {
        guard let alert = try? JSONValue.parse(data), case .object = alert else { return nil }
        let severity = alert["labels"]?["severity"]?.stringValue ?? ""
        if !receiver.severities.isEmpty, !receiver.severities.contains(severity) { return nil }
        var b = JSONObjectBuilder()
        b.add("labels", alert["labels"] ?? .object([]))
        b.add("annotations", alert["annotations"] ?? .object([]))
        b.addIfPresent("startsAt", alert["startsAt"])
        b.addIfPresent("endsAt", alert["endsAt"])
        return (b.value, alert["fingerprint"]?.stringValue, alert["status"]?.stringValue == "firing")
    }


    /// Posts every remembered firing alert again with `endsAt` moved ahead.
    private func resend(to url: URL) {
        guard !firing.isEmpty else { return }
        let endsAt = ISO8601DateFormatter().string(from: Date().addingTimeInterval(TimeInterval(endsAhead)))
        let alerts = firing.values.map { alert -> JSONValue in
            guard case .object(var members) = alert else { return alert }
            members.removeAll { $0.key == "endsAt" }
            members.append(("endsAt", .string(endsAt)))
            return .object(members)
        }
        let r = probe.post(url, json: JSONValue.array(alerts).jsonBytes, timeout: receiver.timeout.secondsValue)
        if let status = r.status, (200..<300).contains(status) {
            counters.add("alertmanager.\(receiver.name).resent", alerts.count)
        } else {
            counters.add("alertmanager.\(receiver.name).errors")
        }
    }

    /// Starts forwarding.
    public func start() {
        worker.start(name: "clusterd-am-\(receiver.name)") { [self] in
            var failures = 0
            let url = URL(string: receiver.url.hasSuffix("/") ? receiver.url + "api/v2/alerts" : receiver.url + "/api/v2/alerts")!
            var lastResend = Date()
            while !worker.isStopping {
                if let forwards, !forwards() {
                    Thread.sleep(forTimeInterval: 0.1)
                    continue
                }
                if Date().timeIntervalSince(lastResend) >= receiver.resendInterval.secondsValue {
                    lastResend = Date()
                    resend(to: url)
                }
                let batch: [JetStreamMessage]
                do { batch = try subscription.fetch(batch: 100, timeout: .milliseconds(500)) } catch { continue }
                if batch.isEmpty { continue }
                let forwarded = batch.compactMap { posted($0.message.data) }
                let alerts = forwarded.map(\.alert)
                if alerts.isEmpty {
                    for m in batch { try? m.ack() }
                    continue
                }
                let r = probe.post(url, json: JSONValue.array(alerts).jsonBytes, timeout: receiver.timeout.secondsValue)
                if let status = r.status, (200..<300).contains(status) {
                    failures = 0
                    for m in batch { try? m.ack() }
                    // Remember firing alerts and forget resolved ones, for the re-send.
                    for f in forwarded { if let fingerprint = f.fingerprint { firing[fingerprint] = f.firing ? f.alert : nil } }
                    counters.add("alertmanager.\(receiver.name).sent", alerts.count)
                } else {
                    failures += 1
                    let delay = Duration.milliseconds(min(60_000, 500 << min(failures, 7)))
                    counters.add("alertmanager.\(receiver.name).errors")
                    logger.warning("Alertmanager did not accept alerts; retrying", metadata: [
                        "receiver": "\(receiver.name)", "status": "\(r.status.map(String.init) ?? "-")", "error": "\(r.error ?? String(decoding: r.body.prefix(200), as: UTF8.self))",
                        "in": "\(delay)"])
                    for m in batch { try? m.nak(delay: delay) }
                    Thread.sleep(forTimeInterval: delay.secondsValue)
                }
            }
        }
    }

    /// Stops after the batch in flight.
    public func stop() { worker.stop() }
}
