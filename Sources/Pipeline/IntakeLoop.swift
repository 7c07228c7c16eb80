import Bus
import Foundation
import Logging
import Synchronization

/// The single writer: fetches a batch, applies it in one transaction, settles every message
/// with the broker only after the commit, publishes the outbox, writes archive entries, and
/// runs the periodic chores (held-stop expiry, pruning). Runs on its own thread because
/// every step blocks.
public final class IntakeLoop: @unchecked Sendable {
    let source: any MessageSource
    let processor: StageProcessor
    let publisher: OutboxPublisher
    let settle: @Sendable () throws -> Void
    let periodic: @Sendable (Int64) throws -> Void
    let name: String
    /// Dead letters are kept this long (seconds).
    var deadLetterRetention: Int64 = 30 * 86_400
    let connection: BusConnection
    let batch: Int
    let logger: Logger
    let counters: PipelineCounters
    private let worker = WorkerThread()

    /// A loop over `source`. After each batch (and at start) it publishes the outbox and
    /// runs `settle` (archive writes); every 10 s it runs `periodic` with the time.
    public init(name: String, source: any MessageSource, processor: StageProcessor, publisher: OutboxPublisher, connection: BusConnection,
                batch: Int, counters: PipelineCounters, logger: Logger,
                settle: @escaping @Sendable () throws -> Void = {}, periodic: @escaping @Sendable (Int64) throws -> Void = { _ in }) {
        self.name = name
        self.settle = settle
        self.periodic = periodic
        self.source = source
        self.processor = processor
        self.publisher = publisher
        self.connection = connection
        self.batch = batch
        self.counters = counters
        self.logger = logger
    }

    /// Starts the loop thread.
    public func start() {
        worker.start(name: "clusterd-\(name)") { [self] in run() }
    }

    /// Asks the loop to stop after the batch in flight and waits until it has.
    public func stop() {
        worker.stop()
    }

    private func run() {
        var failures = 0
        var lastChores = Date.distantPast
        // Whatever a previous run committed but did not finish: outbox and archive.
        settleLeftovers()
        while !worker.isStopping {
            if Date().timeIntervalSince(lastChores) >= 10 {
                lastChores = Date()
                chores()
            }
            let deliveries: [Delivery]
            do {
                deliveries = try source.next(batch: batch, timeout: .milliseconds(500))
            } catch {
                counters.add("intake.fetch_errors")
                logger.warning("fetch failed; retrying", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: 1)
                continue
            }
            if deliveries.isEmpty { continue }
            do {
                let started = ContinuousClock.now
                let dispositions = try processor.process(deliveries.map(\.message))
                counters.observeBatch(stage: name, messages: deliveries.count, duration: ContinuousClock.now - started)
                failures = 0
                for (delivery, disposition) in zip(deliveries, dispositions) {
                    if disposition.isDeadLetterOnly { delivery.term() } else { delivery.ack() }
                    if disposition == .alreadyApplied, let reply = delivery.message.reply {
                        try? connection.publish(reply, Array(#"{"ok":true,"duplicate":true}"#.utf8))
                    }
                }
                settleLeftovers()
            } catch {
                // Nothing of the batch was committed: redeliver it after a growing delay.
                failures += 1
                let delay = Duration.milliseconds(min(30_000, 250 << min(failures, 7)))
                counters.add("intake.batch_retries")
                logger.error("batch not committed; redelivering", metadata: ["error": "\(error)", "messages": "\(deliveries.count)", "delay": "\(delay)"])
                for delivery in deliveries { delivery.nak(delay) }
                Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
            }
        }
        settleLeftovers()
    }

    /// Publishes the outbox and writes pending archive entries.
    private func settleLeftovers() {
        do {
            try publisher.drain()
        } catch {
            counters.add("outbox.publish_errors")
            logger.warning("outbox not published yet", metadata: ["error": "\(error)"])
        }
        do {
            try settle()
        } catch {
            logger.error("\(name): settling committed work failed", metadata: ["error": "\(error)"])
        }
    }

    private func chores() {
        let now = Int64(Date().timeIntervalSince1970)
        do {
            try periodic(now)
            try processor.pruneApplied(before: now - 14 * 86_400)
            try processor.pruneDeadLetters(before: now - deadLetterRetention)
        } catch {
            logger.error("periodic chores failed", metadata: ["error": "\(error)"])
        }
        settleLeftovers()
    }
}
