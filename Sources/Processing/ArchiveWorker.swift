import Dispatch
import Foundation
import Intake
import Logging
import Synchronization
import Threads

/// Writes archive entries on two threads of their own: the job intake only wakes them after a
/// committed batch (``kick()``) and goes on with the next one, so it never waits on the file
/// system. The first thread writes a batch's files (a new entry's in place, a rewrite's under
/// temporary names); the second syncs them, renames any temporary ones into place and syncs
/// again, records the outcomes and publishes what that queued (`clusterd.result.archive.…`).
/// While the second waits for the disk, the first writes the next batches — the syncs were a
/// third of the archive's time when one thread did both (`clusterd bench jobs`) — and the
/// second takes every batch waiting at once, one sync for them all (a group commit: the
/// slower the disk, the bigger the group). At most ``waitingBatches`` wait for it.
public final class ArchiveWorker: Sendable {
    let jobs: JobProcessor
    let publisher: OutboxPublisher
    let logger: Logger
    private let stager = WorkerThread()
    private let finisher = WorkerThread()
    private let wake = DispatchSemaphore(value: 0)
    /// Staged batches of up to 256 jobs that may wait for the finisher (their records are in memory).
    static let waitingBatches = 4
    /// The batches handed to the finisher.
    private let handed = Mutex<[JobProcessor.ArchiveBatch]>([])
    private let handedSignal = DispatchSemaphore(value: 0)
    /// One free slot per batch that may still be handed over.
    private let slot = DispatchSemaphore(value: ArchiveWorker.waitingBatches)
    /// Batches staged and not yet finished: while any is, the table still lists its jobs as
    /// pending, so the stager takes only the jobs the intake hands over.
    private let unfinished = Atomic<Int>(0)

    /// A worker archiving `jobs`' stopped jobs; nothing runs before ``start()``.
    public init(jobs: JobProcessor, publisher: OutboxPublisher, logger: Logger) {
        self.jobs = jobs
        self.publisher = publisher
        self.logger = logger
    }

    /// Asks for a pass (any thread; passes asked for while one runs become one more).
    public func kick() { wake.signal() }

    /// Starts the threads; the first pass (the intakes kick it as they start) takes what a
    /// previous run left pending.
    public func start() {
        finisher.start(name: "clusterd-archive-sync") { [self] in
            while !finisher.isStopping { finishHanded(waiting: .now() + 1) }
            // The stager stopped first: what it handed over last is finished here.
            finishHanded(waiting: .now())
        }
        stager.start(name: "clusterd-archive") { [self] in
            while !stager.isStopping {
                _ = wake.wait(timeout: .now() + 60)  // a kick, a stop, or a minute for retries
                stageAll()
            }
            // The intakes stopped before this worker: a pass that began before their last
            // commit did not see it.
            stageAll()
        }
    }

    /// Stops after a last pass over what is pending.
    public func stop() {
        stager.stop { wake.signal() }
        finisher.stop { handedSignal.signal() }
    }

    /// Stages every pending batch and hands each to the finisher.
    private func stageAll() {
        do {
            while let batch = try jobs.stageArchive(now: Int64(Date().timeIntervalSince1970), fromTable: unfinished.load(ordering: .acquiring) == 0) {
                unfinished.add(1, ordering: .releasing)
                slot.wait()
                handed.withLock { $0.append(batch) }
                handedSignal.signal()
            }
        } catch {
            logger.error("archive pass failed; retried at the next batch or within a minute", metadata: ["error": "\(error)"])
        }
    }

    /// Finishes every batch handed over, if one comes before `deadline`.
    private func finishHanded(waiting deadline: DispatchTime) {
        // Signals and batches need not pair up (one take empties the list of several): the
        // list is what counts, looked at after every signal and every timeout.
        _ = handedSignal.wait(timeout: deadline)
        let batches = handed.withLock { taken in defer { taken.removeAll() }; return taken }
        guard !batches.isEmpty else { return }
        for _ in batches { slot.signal() }
        defer {
            // The table may list more than one batch (after a restart): the stager looks again.
            if unfinished.subtract(batches.count, ordering: .acquiringAndReleasing).newValue == 0 { wake.signal() }
        }
        do {
            _ = try jobs.finishArchive(.joined(batches), now: Int64(Date().timeIntervalSince1970))
            try publisher.drainUnlessBusy()
        } catch {
            logger.error("archive pass failed; retried at the next batch or within a minute", metadata: ["error": "\(error)"])
        }
    }
}
