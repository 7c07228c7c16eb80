import Bus
import Config
import Foundation
import Synchronization

/// A received message and how to settle it with the broker.
public struct Delivery: Sendable {
    /// The message.
    public var message: IncomingMessage
    /// Acknowledge: its effects are committed.
    public var ack: @Sendable () -> Void
    /// Redeliver: a transient failure (queued for redelivery ahead of anything new).
    public var nak: @Sendable () -> Void
    /// Never redeliver: it was dead-lettered.
    public var term: @Sendable () -> Void
}

/// Where the intake loop gets its messages: a JetStream pull consumer or a core subscription.
public protocol MessageSource: Sendable {
    /// Up to `batch` messages, waiting at most `timeout` for the first, each passed through
    /// `predecode` (``StageProcessor/predecode(_:)``) on the thread that fetched it. Blocks.
    func next(batch: Int, timeout: Duration, predecode: @escaping @Sendable (inout IncomingMessage) -> Void) throws -> [Delivery]
    /// Whether the source gives at-least-once delivery.
    var isDurable: Bool { get }
    /// Hands back for redelivery what the source fetched ahead of the batch the caller has
    /// just handed back (or, as it stops, of the last one): redelivered behind that batch, so
    /// nothing newer is applied before it.
    func returnAhead()
}

extension MessageSource {
    /// Nothing is fetched ahead.
    public func returnAhead() {}
}

/// Durable intake: a bound pull consumer (created with add-consumer, never deleted).
public final class JetStreamSource: MessageSource, @unchecked Sendable {
    let subscription: PullSubscription
    let stream: String
    public var isDurable: Bool { true }

    /// The stream's configuration from clusterd's settings (created when missing; see
    /// ``JetStream/ensureStream(_:)``).
    public static func stream(_ config: ClusterdConfig) -> StreamConfig {
        let intake = config.intake
        return StreamConfig(name: intake.stream, description: "ClusterCockpit job and node-state events consumed by clusterd",
                            // The per-cluster forms too (`clusterd publish --per-cluster-subject`), so
                            // partitioned instances can read them; plain ones stay for cc-backend's hooks.
                            subjects: [intake.jobSubject, intake.nodeStateSubject, "\(intake.jobSubject).*", "\(intake.nodeStateSubject).*"],
                            duplicateWindow: intake.duplicateWindow,
                            maxAge: intake.maxAge, replicas: intake.replicas)
    }

    /// Ensures the durable `consumer` filtered on `subject` (the stream exists, see
    /// ``stream(_:)``), then binds.
    public init(connection: BusConnection, config: ClusterdConfig, consumer: String, subject: String, description: String) throws {
        let js = try JetStream(connection)
        let intake = config.intake
        // Acks wait for the commit of a whole batch. Two batches may be outstanding: the one
        // being applied and the next, fetched meanwhile (the broker's delivery of a batch had
        // been a fifth of the job intake's time). A batch handed back for redelivery takes
        // the one fetched ahead with it (``returnAhead()``), so per-job order holds.
        try js.ensureConsumer(stream: intake.stream, ConsumerConfig(
            durable: consumer,
            description: description,
            ackWait: intake.ackWait,
            maxAckPending: 2 * intake.batch,
            filterSubject: subject))
        subscription = try js.pullSubscription(stream: intake.stream, consumer: consumer)
        stream = intake.stream
    }

    /// The fetch of the next batch (and its messages' decoding ahead), run while the caller
    /// applies the last one.
    private final class Ahead: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        var result: Result<[Delivery], BusError> = .success([])
    }
    /// The fetch in flight, if any (the intake loop's thread only).
    private var ahead: Ahead?

    /// The next batch: the one fetched ahead if there is one, else fetched now. When it holds
    /// messages, the batch after it is asked for at once, on another thread, and decoded ahead
    /// there; an empty answer (nothing to fetch) asks for none, so an idle stream is fetched
    /// from as before.
    public func next(batch: Int, timeout: Duration, predecode: @escaping @Sendable (inout IncomingMessage) -> Void) throws -> [Delivery] {
        let fetched: [Delivery]
        if let pending = takeAhead() {
            fetched = try pending.get()
        } else {
            fetched = deliveries(try subscription.fetch(batch: batch, timeout: timeout), predecode: predecode)
        }
        if !fetched.isEmpty {
            let next = Ahead()
            ahead = next
            DispatchQueue.global().async { [self] in
                do throws(BusError) {
                    next.result = .success(deliveries(try subscription.fetch(batch: batch, timeout: timeout), predecode: predecode))
                } catch {
                    next.result = .failure(error)
                }
                next.done.signal()
            }
        }
        return fetched
    }

    /// Waits for the fetch in flight and returns its answer.
    private func takeAhead() -> Result<[Delivery], BusError>? {
        guard let pending = ahead else { return nil }
        ahead = nil
        pending.done.wait()
        return pending.result
    }

    public func returnAhead() {
        guard case .success(let fetched)? = takeAhead() else { return }
        // In stream order, after the batch before them: the broker queues nak'ed messages for
        // redelivery in the order they come.
        for delivery in fetched { delivery.nak() }
    }

    private func deliveries(_ messages: [JetStreamMessage], predecode: (inout IncomingMessage) -> Void) -> [Delivery] {
        let now = Int64(Date().timeIntervalSince1970)
        return messages.map { m in
            var message = IncomingMessage(subject: m.message.subject, data: m.message.data, messageID: m.message.header("Nats-Msg-Id"),
                                          origin: "\(stream):\(m.delivery.streamSequence)",
                                          // The broker's time of arrival, not this fetch's: a backlog applied
                                          // after a pause keeps its times, and a replay of the stream decides the same.
                                          receivedAt: m.delivery.timestamp > 0 ? m.delivery.timestamp / 1_000_000_000 : now,
                                          replayOf: m.message.header(IncomingMessage.replayHeader).flatMap { Int64($0) })
            message.deliveries = m.delivery.deliveries
            predecode(&message)
            return Delivery(
                message: message,
                ack: { try? m.ack() },
                nak: { try? m.nak() },
                term: { try? m.term() })
        }
    }
}

/// At-most-once intake for brokers without JetStream: a queue subscription whose messages
/// wait in memory for the loop.
public final class CoreSource: MessageSource, @unchecked Sendable {
    /// Messages received and not yet taken by the loop, with how often each was taken.
    final class Inbox: Sendable {
        typealias Entry = (message: BusMessage, origin: String, deliveries: UInt64)
        let queue = Mutex<[Entry]>([])
        let signal = DispatchSemaphore(value: 0)

        /// Queues a new message; its delivery identity is fixed here, so that a retry of it
        /// is recognised (attempt counts, applied-message check).
        func push(_ m: BusMessage) {
            push((m, "core:\(m.header("Nats-Msg-Id") ?? UUID().uuidString)", 0), front: false)
        }

        func push(_ entry: Entry, front: Bool) {
            queue.withLock { front ? $0.insert(entry, at: 0) : $0.append(entry) }
            signal.signal()
        }
    }

    private let inbox = Inbox()
    private var subscription: BusSubscription?
    public var isDurable: Bool { false }

    /// Subscribes to `subject` in the configured queue group.
    public init(connection: BusConnection, config: ClusterdConfig, subject: String) throws {
        subscription = try connection.subscribe(subject, queue: config.intake.queueGroup) { [inbox] message in inbox.push(message) }
        try subscription?.removePendingLimits()
        // Registered with the server before start-up reports ready: a request sent right
        // after that finds the subscriber.
        try connection.flush()
    }

    public func next(batch: Int, timeout: Duration, predecode: @escaping @Sendable (inout IncomingMessage) -> Void) throws -> [Delivery] {
        if inbox.queue.withLock({ $0.isEmpty }) {
            _ = inbox.signal.wait(timeout: .now() + .milliseconds(Int(timeout.wholeMilliseconds)))
        }
        let taken: [Inbox.Entry] = inbox.queue.withLock { q in
            let n = min(batch, q.count)
            let head = Array(q.prefix(n))
            q.removeFirst(n)
            return head
        }
        let now = Int64(Date().timeIntervalSince1970)
        return taken.map { (m, origin, deliveries) in
            var message = IncomingMessage(subject: m.subject, data: m.data, messageID: m.header("Nats-Msg-Id"),
                                          origin: origin, reply: m.reply, receivedAt: now,
                                          replayOf: m.header(IncomingMessage.replayHeader).flatMap { Int64($0) })
            message.deliveries = deliveries + 1
            predecode(&message)
            return Delivery(
                message: message,
                ack: {},
                // No broker redelivery in core mode: put it back for the next batch.
                nak: { [inbox] in inbox.push((m, origin, deliveries + 1), front: true) },
                term: {})
        }
    }
}
