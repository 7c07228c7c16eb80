import Dispatch
import Intake
import Logging
import Threads

/// Writes archive entries on a thread of its own: the job intake only wakes it after a
/// committed batch (``kick()``) and goes on with the next one, so it never waits on the file
/// system (two syncs per set of entries). Each pass archives every pending job, then
/// publishes what it queued (archive outcomes on `clusterd.result.archive.…`).
public final class ArchiveWorker: Sendable {
    let jobs: JobProcessor
    let publisher: OutboxPublisher
    let logger: Logger
    private let worker = WorkerThread()
    private let wake = DispatchSemaphore(value: 0)

    /// A worker archiving `jobs`' stopped jobs; nothing runs before ``start()``.
    public init(jobs: JobProcessor, publisher: OutboxPublisher, logger: Logger) {
        self.jobs = jobs
        self.publisher = publisher
        self.logger = logger
    }

    /// Asks for a pass (any thread; passes asked for while one runs become one more).
    public func kick() { wake.signal() }

    /// Starts the thread; its first pass (the intakes kick it as they start) takes what a
    /// previous run left pending.
    public func start() {
        worker.start(name: "clusterd-archive") { [self] in
            while !worker.isStopping {
                _ = wake.wait(timeout: .now() + 60)  // a kick, a stop, or a minute for retries
                pass()
            }
            // The intakes stopped before this worker: a pass that began before their last
            // commit did not see it.
            pass()
        }
    }

    /// Stops after a last pass over what is pending.
    public func stop() {
        worker.stop { wake.signal() }
    }

    private func pass() {
        do {
            try jobs.archivePending()
            try publisher.drainUnlessBusy()
        } catch {
            logger.error("archive pass failed; retried at the next batch or within a minute", metadata: ["error": "\(error)"])
        }
    }
}
