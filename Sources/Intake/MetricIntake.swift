import Bus
import Config
import Foundation
import Health
import LineProtocol
import Logging
import MetricBuffers
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
    let store: MetricStore
    let decoder: MetricDecoder
    let sink: @Sendable (_ out: MetricDecoder.Output, _ receivedAt: Int64) -> Void
    private var subscriptions: [BusSubscription] = []
    /// Several subscriptions (one per owned cluster) deliver on threads of their own: one
    /// message is decoded at a time (the decoder keeps its index and storage).
    private let decoding = NSLock()

    /// Subscribes at once. `admit` gives a line's new series its number in `store` (creating
    /// it), or says why it may not be kept (an unknown cluster, a series past a limit); a
    /// refusal is a dead letter. Kept samples are written to `store`, then go to `sink`.
    /// `admissionVersion` changes when what `admit` or `watches` reads is reloaded (see ``MetricDecoder``).
    public init(connection: BusConnection, publisher: OutboxPublisher, config: ClusterdConfig, counters: PipelineCounters, logger: Logger,
                store: MetricStore, admissionVersion: @escaping () -> Int = { 0 }, watches: @escaping (MetricSample) -> Bool = { _ in true },
                admit: @escaping (MetricSample) -> Result<Int32, MetricDecoder.Refusal>,
                sink: @escaping @Sendable (_ out: MetricDecoder.Output, _ receivedAt: Int64) -> Void) throws {
        self.store = store
        // Twice the series the store may hold: room for a few byte forms (tag orders) of each.
        decoder = MetricDecoder(defaultCluster: config.metrics.defaultCluster, indexLimit: 2 * store.limits.total,
                                 version: admissionVersion, watches: watches, admit: admit)
        self.connection = connection
        self.publisher = publisher
        self.config = config
        self.counters = counters
        self.logger = logger
        self.sink = sink
        for subject in config.metricSubjects {
            let subscription = try connection.subscribe(subject) { [weak self] message in self?.handle(message) }
            try subscription.removePendingLimits()
            subscriptions.append(subscription)
        }
        // The subscription is in place at the server before start() returns.
        try connection.flush()
    }

    /// Decodes one message line by line in full (no series index); returns the samples and the
    /// dead letters of its bad lines. The reference `MetricDecoder` is checked against
    /// (`MetricDecoderTests`), and `clusterd bench health`'s decoding step.
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
        // A message with no line at all (empty, blanks, comments) is answered too: never a silent drop.
        if samples.isEmpty && letters.isEmpty { letters.append(emptyMessage(message, now: now)) }
        return (samples, letters)
    }

    /// The dead letter of a message that holds no metric line.
    static func emptyMessage(_ message: BusMessage, now: Int64) -> DeadLetter {
        DeadLetter(stage: "metrics", message: message, line: 1, column: 1, code: "empty_message", reason: "the message holds no metric line",
                   raw: String(decoding: message.data.prefix(200), as: UTF8.self), receivedAt: now)
    }

    private func handle(_ message: BusMessage) {
        let now = Int64(Date().timeIntervalSince1970)
        let out = decoding.withLock {
            let out = decoder.decode(message, now: now)
            store.write(out.samples)
            sink(out, now)  // in order of decoding: the health loop sees each series' samples in time order
            return out
        }
        counters.add("metrics.lines", out.samples.count)
        if !out.new.isEmpty { counters.add("metrics.series_indexed", out.new.count) }
        // Through the outbox like every other letter (the samples themselves are at-most-once).
        publisher.deadLetters(out.letters, about: message, prefix: config.publish.deadLetterPrefix, counters: counters)
    }

    /// Stops receiving.
    public func stop() {
        for subscription in subscriptions { subscription.unsubscribe() }
        subscriptions = []
    }
}
