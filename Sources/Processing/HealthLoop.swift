import Alerts
import Config
import Foundation
import Health
import Intake
import Jobs
import Logging
import MetricBuffers
import Model
import Nodes
import Observability
import Store
import Synchronization
import Threads

/// The health evaluator's thread: takes metric samples, node observations and stopped jobs
/// from an inbox, feeds the engine, advances its clock, records transitions in the alert
/// book (state and outbox in one transaction) and publishes. A transition that could not be
/// recorded is retried, never dropped.
public final class HealthLoop: @unchecked Sendable {
    enum Input {
        /// New series first (number and identity), then samples by series number of watched
        /// series and the series of hosts that reported; `lines` counts them all.
        case series(new: [(Int32, MetricSample)], samples: [SeriesSample], reported: [Int32], lines: Int, receivedAt: Int64)
        case nodes([NodeObservation])
        case jobs([JobRecord])
        case query(@Sendable (HealthEngine) -> Void)
        case housekeeping(at: Int64)
    }

    final class Inbox: Sendable {
        let items = Mutex<(inputs: [Input], samples: Int)>(([], 0))
        let signal = DispatchSemaphore(value: 0)
    }

    /// The engine (touched only by the loop thread once started).
    let engine: HealthEngine
    let book: AlertBook
    let publisher: OutboxPublisher
    let writer: DatabaseWriter
    let counters: PipelineCounters
    let logger: Logger
    let interval: Duration
    /// Samples waiting beyond this are dropped (and counted) instead of exhausting memory.
    let maxQueuedSamples: Int
    private let inbox = Inbox()
    private let worker = WorkerThread()
    private var unrecorded: [HealthTransition] = []
    /// Alert history older than this is deleted (hourly).
    package var historyRetention: Int64 = 90 * 86_400
    private var lastPrune: Int64 = 0

    /// A loop over `engine`, already restored from `book`.
    public init(engine: HealthEngine, book: AlertBook, writer: DatabaseWriter, publisher: OutboxPublisher, interval: Duration, counters: PipelineCounters,
                logger: Logger, maxQueuedSamples: Int = 2_000_000) {
        self.engine = engine
        self.book = book
        self.publisher = publisher
        self.writer = writer
        self.interval = interval
        self.counters = counters
        self.logger = logger
        self.maxQueuedSamples = maxQueuedSamples
    }

    /// Queues samples by series number (any thread; the metric path): `samples` of series a
    /// check watches, `reported` series of hosts that sent lines no check needs, `lines` in
    /// all. `new` names the series seen for the first time, before any sample of theirs. New
    /// series are never dropped (a later sample would find no series); samples are when the
    /// queue is full.
    public func submit(new: [(Int32, MetricSample)], samples: [SeriesSample], reported: [Int32], lines: Int, receivedAt: Int64) {
        if !new.isEmpty { push(.series(new: new, samples: [], reported: [], lines: 0, receivedAt: receivedAt)) }
        submit(.series(new: [], samples: samples, reported: reported, lines: lines, receivedAt: receivedAt), count: lines)
    }

    private func submit(_ input: Input, count: Int) {
        guard count > 0 else { return }
        // The loop drains the whole queue after each wake-up: only the first input queued
        // since then needs to wake it (not one semaphore post per metric message).
        let accepted = inbox.items.withLock { box -> Bool? in
            guard box.samples + count <= maxQueuedSamples else { return nil }
            box.samples += count
            box.inputs.append(input)
            return box.inputs.count == 1
        }
        if let wake = accepted { if wake { inbox.signal.signal() } } else {
            counters.add("health.samples_dropped", count)
            logger.warning("health evaluation is behind: metric samples dropped", metadata: ["count": "\(count)"])
        }
    }

    /// Queues node observations (any thread).
    public func submit(nodes: [NodeObservation]) { push(.nodes(nodes)) }

    /// Queues stopped jobs (any thread).
    public func submit(jobs: [JobRecord]) { push(.jobs(jobs)) }

    /// Queues the alert book's housekeeping at `now` (the scheduler's time): re-sends of
    /// firing alerts, announcements when a maintenance window ends, hourly history pruning.
    public func housekeeping(now: Int64) { push(.housekeeping(at: now)) }

    /// Runs `body` on the loop thread with the engine (between inputs, so it sees a
    /// consistent state) and returns its result; nil when the loop did not answer in time.
    public func inspect<T: Sendable>(timeout: Double = 5, _ body: @escaping @Sendable (HealthEngine) -> T) -> T? {
        let box = ResultBox<T>()
        push(.query { engine in
            box.value = body(engine)
            box.done.signal()
        })
        return box.done.wait(timeout: .now() + timeout) == .success ? box.value : nil
    }

    private func push(_ input: Input) {
        inbox.items.withLock { $0.inputs.append(input) }
        inbox.signal.signal()
    }

    /// Starts the loop thread.
    public func start() {
        worker.start(name: "clusterd-health") { [self] in run() }
    }

    /// Stops after recording what is pending.
    public func stop() {
        worker.stop() { [inbox] in inbox.signal.signal() }
    }

    private func run() {
        let intervalSeconds = interval.secondsValue
        var lastTick = Date.distantPast
        while true {
            // The stop flag is read after the wait: a stop's wake-up consumed by this wait must
            // not leave the next one waiting a whole interval.
            if !worker.isStopping, inbox.signal.wait(timeout: .now() + intervalSeconds) == .success {
                // Woken by new input: let a few more messages queue up behind it (0.2 ms), so
                // a busy metric stream wakes this thread a few thousand times a second, not
                // once per message (each wake-up is a system call on the delivery thread).
                usleep(200)
            }
            let done = worker.isStopping
            let inputs = inbox.items.withLock { box -> [Input] in
                defer { box = ([], 0) }
                return box.inputs
            }
            let now = Int64(Date().timeIntervalSince1970)
            let housekeepingAt = feed(inputs)
            let tick = Date().timeIntervalSince(lastTick) >= intervalSeconds || done
            if tick {
                lastTick = Date()
                engine.tick(now: now)
            }
            record(now: now, housekeepingAt: housekeepingAt)
            if tick { counters.add("health.ticks") }
            if done { return }
        }
    }

    /// Applies `inputs`; returns the time of the last housekeeping asked for, if one was.
    private func feed(_ inputs: [Input]) -> Int64? {
        var housekeepingAt: Int64?
        for input in inputs {
            switch input {
            case .series(let new, let samples, let reported, let lines, let receivedAt):
                for (number, sample) in new { engine.register(series: number, as: sample) }
                engine.ingest(series: samples, reported: reported, now: receivedAt)
                if lines > 0 { counters.add("health.samples", lines) }
            case .nodes(let observations):
                for o in observations {
                    engine.observe(NodeStatus(cluster: o.cluster, hostname: o.hostname, flags: o.slurm.flags), now: o.at)
                }
            case .jobs(let jobs):
                for j in jobs { engine.jobEnded(Self.exit(j), now: Int64(Date().timeIntervalSince1970)) }
            case .query(let body):
                body(engine)
            case .housekeeping(let at):
                housekeepingAt = at
            }
        }
        return housekeepingAt
    }

    /// The black-hole view of a stopped job.
    package static func exit(_ job: JobRecord) -> JobExit {
        JobExit(cluster: job.start.cluster, jobId: job.start.jobId, user: job.start.user, hosts: job.start.resources.map(\.hostname),
                state: job.state.rawValue, runtime: job.duration, stopTime: job.start.startTime + job.duration)
    }

    private func record(now: Int64, housekeepingAt: Int64?) {
        unrecorded += engine.takeTransitions()
        do {
            writer.lock.lock()
            defer { writer.lock.unlock() }
            if !unrecorded.isEmpty {
                let queued = try book.record(unrecorded, now: now)
                counters.add("alerts.transitions", unrecorded.count)
                counters.add("alerts.published", queued)
                for t in unrecorded {
                    logger.info("alert \(t.status.rawValue)", metadata: ["check": "\(t.key.check)", "entity": "\(t.key.entity)",
                                                                           "component": "\(t.key.component)", "severity": "\(t.severity.rawValue)",
                                                                           "flapping": "\(t.flapping)"])
                }
                unrecorded.removeAll()
            }
            if let at = housekeepingAt {
                let resent = try book.housekeeping(now: at)
                if resent > 0 { counters.add("alerts.resent_or_unsilenced", resent) }
                if at - lastPrune >= 3600 {
                    lastPrune = at
                    try book.prune(before: at - historyRetention)
                }
            }
        } catch {
            counters.add("alerts.record_errors")
            logger.error("alert transitions not recorded yet; retrying", metadata: ["error": "\(error)", "pending": "\(unrecorded.count)"])
            return
        }
        do {
            try publisher.drain()
        } catch {
            counters.add("outbox.publish_errors")
            logger.warning("outbox not published yet", metadata: ["error": "\(error)"])
        }
    }
}
