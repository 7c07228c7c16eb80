import Foundation
import Synchronization
import Testing
import Threads

/// The scheduler runs each task every interval of its clock, and only then.
@Suite(.timeLimit(.minutes(1))) struct SchedulerTests {
    @Test func tasksRunAtStartThenEveryIntervalOfTheClock() {
        let clock = ManualClock(1_000)
        let scheduler = Scheduler(clock: clock)
        let runs = Mutex<[String]>([])
        scheduler.every(10, "often") { now in runs.withLock { $0.append("often@\(now)") } }
        scheduler.every(3600, "hourly") { now in runs.withLock { $0.append("hourly@\(now)") } }
        #expect(scheduler.runDue() == ["often", "hourly"])
        #expect(scheduler.runDue().isEmpty)
        clock.advance(by: 9)
        #expect(scheduler.runDue().isEmpty)
        clock.advance(by: 1)
        #expect(scheduler.runDue() == ["often"])
        clock.advance(by: 3600)
        #expect(scheduler.runDue() == ["often", "hourly"])
        #expect(runs.withLock { $0 } == ["often@1000", "hourly@1000", "often@1010", "often@4610", "hourly@4610"])
    }

    @Test func aStartedSchedulerSeesAManualClockMove() async throws {
        let clock = ManualClock(0)
        let scheduler = Scheduler(clock: clock, resolution: 0.01)
        let count = Atomic<Int>(0)
        scheduler.every(100, "task") { _ in count.add(1, ordering: .relaxed) }
        scheduler.start()
        defer { scheduler.stop() }
        while count.load(ordering: .relaxed) < 1 { try await Task.sleep(for: .milliseconds(5)) }
        clock.advance(by: 100)
        while count.load(ordering: .relaxed) < 2 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(count.load(ordering: .relaxed) == 2)
    }

    @Test func aSlowTaskOnItsOwnLaneNeitherDelaysTheOthersNorPilesUp() throws {
        let clock = ManualClock(0)
        let scheduler = Scheduler(clock: clock)
        let release = DispatchSemaphore(value: 0)
        let slowRuns = Atomic<Int>(0), quickRuns = Atomic<Int>(0)
        scheduler.every(1, "slow", ownLane: true) { _ in slowRuns.add(1, ordering: .relaxed); release.wait() }
        scheduler.every(1, "quick") { _ in quickRuns.add(1, ordering: .relaxed) }
        #expect(scheduler.runDue() == ["slow", "quick"])     // returns while "slow" still runs
        clock.advance(by: 1)
        #expect(scheduler.runDue() == ["quick"])             // "slow" is busy: this run is skipped
        #expect(scheduler.skipped == 1)
        #expect(quickRuns.load(ordering: .relaxed) == 2)
        release.signal()
        scheduler.stop()                                     // waits for the lane
        #expect(slowRuns.load(ordering: .relaxed) == 1)
    }
}
