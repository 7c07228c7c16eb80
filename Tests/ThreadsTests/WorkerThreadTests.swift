import Foundation
import Synchronization
import Testing
import Threads

@Suite(.timeLimit(.minutes(1))) struct WorkerThreadTests {
    /// Linux keeps 15 bytes of a thread's name and refuses a longer one (the thread then
    /// showed its creator's name, `oot.default-qos`, in `top -H` and `perf`).
    @Test func threadsCarryTheirShortNameAsTheSystemShowsIt() {
        for (given, shown) in [("clusterd-archive-sync", "cd-archive-sync"), ("clusterd-jobs", "cd-jobs"),
                               ("clusterd-am-a-very-long-receiver", "cd-am-a-very-lo"), ("lease", "lease")] {
            let seen = Mutex<String>("")
            let worker = WorkerThread()
            worker.start(name: given) {
                let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "(unreadable)"
                seen.withLock { $0 = comm.trimmingCharacters(in: .newlines) }
            }
            worker.stop()
            #expect(seen.withLock { $0 } == shown, "started as \(given)")
        }
    }
}
