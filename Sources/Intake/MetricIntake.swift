import Bus
import Config
import Foundation
import Health
import LineProtocol
import Logging
import Model
import Observability

/// The metric stream: a core subscription to the collectors' subject (metrics are high-rate
/// and current values matter, as in cc-metric-store). Each message is decoded on the
/// subscription's thread; good lines go to `sink` (health evaluation, metric buffers), every
/// bad line to `clusterd.dlq.metrics` and the log, while the other lines still count.
public final class MetricIntake: @unchecked Sendable {
    let connection: BusConnection
    let publisher: OutboxPublisher
    let config: ClusterdConfig
    let counters: PipelineCounters
    let logger: Logger
    let sink: @Sendable ([MetricSample], Int64) -> Void
    let admit: @Sendable (MetricSample) -> (code: String, reason: String)?
    private var subscription: BusSubscription?

    /// Subscribes at once. `admit` keeps a sample (in the metric buffers) and returns nil, or
    /// says why it may not be kept (code and reason: an unknown cluster, a series past a
    /// limit); a refusal is a dead letter. `sink` gets the kept samples.
    public init(connection: BusConnection, publisher: OutboxPublisher, config: ClusterdConfig, counters: PipelineCounters, logger: Logger,
                admit: @escaping @Sendable (MetricSample) -> (code: String, reason: String)? = { _ in nil },
                sink: @escaping @Sendable ([MetricSample], Int64) -> Void) throws {
        self.admit = admit
        self.connection = connection
        self.publisher = publisher
        self.config = config
        self.counters = counters
        self.logger = logger
        self.sink = sink
        subscription = try connection.subscribe(config.metrics.subject) { [weak self] message in self?.handle(message) }
        try subscription?.removePendingLimits()
        // The subscription is in place at the server before start() returns.
        try connection.flush()
    }

    /// Decodes one message; returns the samples and the dead letters of its bad lines.
    public static func decode(_ message: BusMessage, defaultCluster: String, now: Int64,
                              admit: (MetricSample) -> (code: String, reason: String)? = { _ in nil }) -> ([MetricSample], [DeadLetter]) {
        var samples: [MetricSample] = []
        var letters: [DeadLetter] = []
        func letter(_ line: Int, _ column: Int, _ code: String, _ reason: String, _ raw: UnsafeBufferPointer<UInt8>) -> DeadLetter {
            DeadLetter(stage: "metrics", message: message, line: line, column: column, code: code, reason: reason,
                       raw: String(decoding: raw, as: UTF8.self), receivedAt: now)
        }
        LineDecoder(precision: .nanoseconds).forEachLine(in: message.data) { entry in
            switch entry {
            case .error(let e, let raw): letters.append(letter(e.line, e.column, "syntax", e.reason.description, raw))
            case .point(let view):
                switch MetricLine.decode(view, defaultCluster: defaultCluster, now: now) {
                case .success(let s):
                    if let refusal = admit(s) {
                        letters.append(letter(view.line, 1, refusal.code, refusal.reason, view.raw))
                    } else {
                        samples.append(s)
                    }
                case .failure(let located): letters.append(letter(view.line, located.column, located.value.code, located.value.reason, view.raw))
                }
            }
        }
        if samples.isEmpty && letters.isEmpty {
            // A message with no line at all (empty, blanks, comments) is answered too: never a silent drop.
            letters.append(DeadLetter(stage: "metrics", message: message, line: 1, column: 1, code: "empty_message", reason: "the message holds no metric line",
                                      raw: String(decoding: message.data.prefix(200), as: UTF8.self), receivedAt: now))
        }
        return (samples, letters)
    }

    private func handle(_ message: BusMessage) {
        let now = Int64(Date().timeIntervalSince1970)
        let (samples, letters) = Self.decode(message, defaultCluster: config.metrics.defaultCluster, now: now, admit: admit)
        counters.add("metrics.lines", samples.count)
        sink(samples, now)
        // Through the outbox like every other letter (the samples themselves are at-most-once).
        publisher.deadLetters(letters, about: message, prefix: config.publish.deadLetterPrefix, counters: counters)
    }

    /// Stops receiving.
    public func stop() {
        subscription?.unsubscribe()
        subscription = nil
    }
}
