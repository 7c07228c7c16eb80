import Bus
import Config
import Foundation
import Logging
import Observability
import Store
import Synchronization
import Threads

/// A stage's delivery loop: fetches a batch, applies it in one transaction (on the shared
/// ``DatabaseWriter``), settles every message with the broker only after the commit,
/// publishes what the batch queued and wakes the archive worker. Runs on its own thread because every
/// step blocks; its periodic chores (``chores(now:)``) run on the service's scheduler.
public final class IntakeLoop: @unchecked Sendable {
    let source: any MessageSource
    let processor: StageProcessor
    let publisher: OutboxPublisher
    let writer: DatabaseWriter
    let settle: @Sendable () throws -> Void
    let periodic: @Sendable (Int64) throws -> Void
    package let name: String
    /// Dead letters are kept this long (seconds).
    package var deadLetterRetention: Int64 = 30 * 86_400
    /// Attempts at one message before it is dead-lettered as a poison pill.
    package var maxAttempts = 3
    let batch: Int
    let logger: Logger
    let counters: PipelineCounters
    private let worker = WorkerThread()
    /// The last drain failed (this loop's thread only).
    private var undrained = false

    /// A loop over `source`. After each batch (and at start) it publishes the outbox (when
    /// the batch queued into it) and runs `settle` (wakes the archive worker); `periodic` is its stage's part of ``chores(now:)``.
    public init(name: String, source: any MessageSource, processor: StageProcessor, writer: DatabaseWriter, publisher: OutboxPublisher,
                batch: Int, counters: PipelineCounters, logger: Logger,
                settle: @escaping @Sendable () throws -> Void = {}, periodic: @escaping @Sendable (Int64) throws -> Void = { _ in }) {
        self.periodic = periodic
        self.name = name
        self.settle = settle
        self.source = source
        self.processor = processor
        self.publisher = publisher
        self.writer = writer
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

    /// Asks the loop to stop after the batch in flight, without waiting (see ``stop()``).
    public func requestStop() {
        worker.requestStop()
    }

    private func run() {
        var failures = 0
        // Whatever a previous run committed but did not finish: outbox and archive.
        settleLeftovers()
        while !worker.isStopping {
            let deliveries: [Delivery]
            do {
                // Decoded ahead where the stage allows, off the writer (StageProcessor.predecode).
                deliveries = try source.next(batch: batch, timeout: .milliseconds(500), predecode: processor.predecode)
            } catch {
                counters.add("intake.fetch_errors")
                logger.warning("fetch failed; retrying", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: 1)
                continue
            }
            if deliveries.isEmpty { continue }
            if deliveries.contains(where: { $0.message.deliveries > 1 }) {
                // An earlier attempt at this batch failed or ended with the process: find the
                // message that does it, one at a time, and stop retrying it after maxAttempts.
                failures = applyAlone(deliveries, failures: failures)
                continue
            }
            do {
                let started = ContinuousClock.now
                let (dispositions, queued) = try writer.perform { db in
                    let before = db.outboxAppends
                    return (try processor.process(deliveries.map(\.message)), db.outboxAppends != before)
                }
                counters.observeBatch(stage: name, messages: deliveries.count, duration: ContinuousClock.now - started)
                failures = 0
                for (delivery, disposition) in zip(deliveries, dispositions) { settle(delivery, disposition) }
                // A batch that queued nothing (a hook's plain publish gets no result) leaves
                // the outbox to the parts that queued into it — the archive worker publishes
                // its outcomes itself — instead of flushing their rows on this loop's time.
                settleLeftovers(publish: queued)
            } catch {
                // Nothing of the batch was committed: redeliver it after a growing delay (then
                // message by message, see applyAlone).
                failures = retryLater(deliveries, failures: failures + 1, error: error, message: "batch not committed; redelivering")
            }
        }
        // Fetched ahead and not applied: back to the broker now, for whoever reads next.
        source.returnAhead()
        settleLeftovers()
    }

    /// The poison-pill breaker: applies `deliveries` one by one, each attempt recorded (and
    /// committed) before it is made. A message whose attempts reached `maxAttempts` — failed
    /// with an error, or ended with the process — is dead-lettered (`poison_pill`) and
    /// terminated instead; the messages after it go on. On a failure the rest of the batch
    /// is redelivered behind it, so order holds. Returns the consecutive transient failures.
    private func applyAlone(_ deliveries: [Delivery], failures: Int) -> Int {
        for (index, delivery) in deliveries.enumerated() {
            let message = delivery.message
            do {
                writer.lock.lock()
                defer { writer.lock.unlock() }
                if try !processor.isApplied(message) {
                    let attempts = try processor.attempts(message)
                    if attempts.started >= maxAttempts {
                        try processor.poison(message, after: attempts)
                        logger.error("poison pill: message dead-lettered after \(attempts.started) attempts",
                                     metadata: ["origin": "\(message.origin)", "subject": "\(message.subject)", "last_error": "\(attempts.lastError ?? "none (the process ended)")"])
                        delivery.term()
                        settleLeftovers()
                        continue
                    }
                    try processor.beginAttempt(message)
                }
            } catch {
                return retryLater(Array(deliveries[index...]), failures: failures + 1, error: error, message: "attempt bookkeeping failed")
            }
            do {
                settle(delivery, try writer.perform { _ in try processor.process([message])[0] })
                settleLeftovers()
            } catch {
                let transient = (error as? StoreError)?.isTransient ?? false
                try? writer.perform { _ in try processor.endAttempt(message, error: transient ? nil : "\(error)") }
                if !transient { counters.add("intake.failed_attempts") }
                return retryLater(Array(deliveries[index...]), failures: transient ? failures + 1 : 1, error: error,
                                  message: transient ? "message not committed; redelivering" : "applying a message failed; retrying it alone")
            }
        }
        return 0
    }

    /// Settles one committed delivery with the broker: terminated when nothing in it could ever
    /// apply, else acknowledged.
    private func settle(_ delivery: Delivery, _ disposition: MessageDisposition) {
        if disposition.isDeadLetterOnly { delivery.term() } else { delivery.ack() }
    }

    /// Hands `deliveries` back for redelivery, in order and with what was fetched ahead behind
    /// them, and waits a delay that grows with `failures` before fetching again. They are
    /// nak'ed at once, not with a delay of the broker's: waiting out such a delay, they would
    /// no longer hold back newer messages — a fetch could get those first (one limit of
    /// unacknowledged messages for two batches, or a short batch) — while queued for
    /// redelivery they come before anything new, in the order nak'ed.
    private func retryLater(_ deliveries: [Delivery], failures: Int, error: any Error, message: Logger.Message) -> Int {
        let delay = Duration.milliseconds(min(30_000, 250 << min(failures, 7)))
        counters.add("intake.batch_retries")
        logger.error(message, metadata: ["error": "\(error)", "messages": "\(deliveries.count)", "delay": "\(delay)",
                                         "origin": "\(deliveries.first?.message.origin ?? "")"])
        for delivery in deliveries { delivery.nak() }
        source.returnAhead()
        Thread.sleep(forTimeInterval: delay.secondsValue)
        return failures
    }

    /// Publishes the outbox (unless `publish` is false and the last try succeeded) and runs
    /// `settle` (wakes the archive worker).
    private func settleLeftovers(publish: Bool = true) {
        do {
            // A drain that failed (the broker away) is tried again after the next batch, as
            // before, whether or not that batch queued anything.
            if publish || undrained { try publisher.drainUnlessBusy() }
            undrained = false
        } catch {
            undrained = true
            counters.add("outbox.publish_errors")
            logger.warning("outbox not published yet", metadata: ["error": "\(error)"])
        }
        do {
            try settle()
        } catch {
            logger.error("\(name): settling committed work failed", metadata: ["error": "\(error)"])
        }
    }

    /// The stage's periodic part (held-stop expiry, retention, history pruning), then the
    /// pruning of delivery bookkeeping and old dead letters, and the outbox they filled.
    /// Called by the scheduler at `now`.
    public func chores(now: Int64) {
        do {
            try periodic(now)
            try writer.perform { _ in
                try processor.pruneApplied(before: now - 14 * 86_400)
                try processor.pruneAttempts(before: now - 14 * 86_400)
                _ = try processor.pruneDeadLetters(before: now - deadLetterRetention)
            }
        } catch {
            logger.error("periodic chores failed", metadata: ["error": "\(error)"])
        }
        // Expired held stops are dead letters now; archive writes stay with the loop's thread.
        do { try publisher.drain() } catch { logger.warning("outbox not published yet", metadata: ["error": "\(error)"]) }
    }
}
