import Bus
import Foundation
import Logging
import Observability
import Store
import Synchronization

/// Publishes committed outbox rows, each with its deterministic `Nats-Msg-Id`, then removes
/// them. A crash before the removal re-publishes them on restart; a stream's duplicate
/// window drops the copies. Several loops share one publisher: it drains under a lock of its
/// own, so no row is sent twice, and holds the writer only to read and remove rows — never
/// while it waits for the broker.
public final class OutboxPublisher: @unchecked Sendable {
    let outbox: Outbox
    let writer: DatabaseWriter
    private let lock = NSLock()
    let connection: BusConnection
    let logger: Logger

    /// Counts parked messages (`outbox.parked`).
    let counters: PipelineCounters?
    /// Whether this replica publishes (nil: always, the single-instance case). A standby keeps
    /// its copies ``standbyKeep`` long, then drops them unsent: the publishing replica, which
    /// applied the same stream, sent the same messages under the same ids.
    public var publishes: (@Sendable () -> Bool)?
    /// How long a standby keeps its copies (a take-over publishes the younger ones again;
    /// the streams' duplicate windows drop what was sent).
    public var standbyKeep = Duration.seconds(60)
    private var lastStandbyPrune: Int64 = 0

    /// A publisher of the outbox behind `writer` on `connection`.
    public init(writer: DatabaseWriter, connection: BusConnection, logger: Logger, counters: PipelineCounters? = nil) {
        outbox = Outbox(writer.database)
        self.writer = writer
        self.connection = connection
        self.logger = logger
        self.counters = counters
    }

    /// Queues `messages` (one transaction) and publishes them with whatever else is pending:
    /// for parts that keep no table of their own (the metric and fleet paths' dead letters).
    public func enqueue(_ messages: [OutboxMessage]) throws {
        guard !messages.isEmpty else { return }
        try writer.transaction { _ in for m in messages { try outbox.append(m) } }
        try drain()
    }

    /// Counts, logs and publishes the dead letters of a core-NATS message (the metric and
    /// fleet paths keep no table of their own); a failure is counted and logged, the letters
    /// themselves are already in the log.
    package func deadLetters(_ letters: [DeadLetter], about message: BusMessage, prefix: String, counters: PipelineCounters) {
        guard !letters.isEmpty else { return }
        for letter in letters {
            counters.add("dead_letters.\(letter.stage).\(letter.code)")
            logger.warning("dead letter", metadata: ["stage": "\(letter.stage)", "subject": "\(letter.subject)", "code": "\(letter.code)",
                                                     "error": "\(letter.summary)"])
        }
        let hash = DeadLetter.contentHash(of: message)
        do {
            try enqueue(letters.map { $0.outboxMessage(prefix: prefix, messageHash: hash) })
        } catch {
            counters.add("outbox.publish_errors")
            logger.warning("dead letters not published yet (counted and logged)", metadata: ["error": "\(error)"])
        }
    }

    /// Publishes everything pending; returns how many were sent. Throws when the broker
    /// did not confirm (the rows stay and are sent again next time).
    @discardableResult
    public func drain() throws -> Int {
        asked.store(true, ordering: .sequentiallyConsistent)
        lock.lock()
        return try drainHoldingLock()
    }

    /// Publishes what is pending unless another drain is under way — that one publishes it
    /// too, as it looks again before it ends: a loop that just committed goes on with its
    /// next batch instead of waiting for the broker's flush of another part's rows.
    @discardableResult
    public func drainUnlessBusy() throws -> Int {
        asked.store(true, ordering: .sequentiallyConsistent)
        guard lock.try() else { return 0 }
        return try drainHoldingLock()
    }

    /// Drains with ``lock`` held and lets it go; drains again while a drain was asked for
    /// meanwhile (one that found the lock taken and left its rows to this one).
    private func drainHoldingLock() throws -> Int {
        var sent = 0
        while true {
            asked.store(false, ordering: .sequentiallyConsistent)
            do {
                sent += try drainLocked()
            } catch {
                lock.unlock()
                throw error
            }
            lock.unlock()
            guard asked.load(ordering: .sequentiallyConsistent), lock.try() else { return sent }
        }
    }

    /// Set by every drain request, cleared when a drain begins reading the outbox.
    private let asked = Atomic<Bool>(false)

    private func drainLocked() throws -> Int {
        if let publishes, !publishes() {
            let now = Int64(Date().timeIntervalSince1970)
            if now != lastStandbyPrune {
                lastStandbyPrune = now
                let dropped = try writer.perform { _ in try outbox.removeQueued(before: now - standbyKeep.components.seconds) }
                if dropped > 0 { counters?.add("outbox.standby_dropped", dropped) }
            }
            return 0
        }
        var sent = 0
        while true {
            let batch = try writer.perform { _ in try outbox.pending(limit: 1000) }
            guard let last = batch.last else { return sent }
            for m in batch {
                // A message larger than the broker takes can never be sent: retrying it would
                // hold back every later one (head-of-line blocking). It is parked instead.
                let limit = connection.maxPayload
                let size = m.payload.count + m.messageID.count + m.subject.count + m.headerText.utf8.count + 64  // + header block
                if limit > 0 && size > limit {
                    try park(m, reason: "\(size) bytes exceed the broker's max_payload of \(limit)")
                    continue
                }
                do {
                    var headers = m.headers.mapValues { [$0] }
                    headers["Nats-Msg-Id"] = [m.messageID]
                    try connection.publish(BusMessage(subject: m.subject, headers: headers, data: m.payload))
                } catch {
                    let text = "\(error)"
                    guard text.contains("Maximum Payload") else { throw error }
                    try park(m, reason: text)
                }
            }
            try connection.flush(timeout: .seconds(5))
            try writer.perform { _ in try outbox.remove(upTo: last.id) }
            sent += batch.count
        }
    }

    private func park(_ m: OutboxMessage, reason: String) throws {
        try writer.perform { _ in try outbox.park(m, reason: reason) }
        counters?.add("outbox.parked")
        logger.error("outbox message parked: it can never be published; later messages go on", metadata: [
            "subject": "\(m.subject)", "message_id": "\(m.messageID)", "bytes": "\(m.payload.count)", "reason": "\(reason)",
            "inspect": "SELECT * FROM outbox_parked"])
    }
}
