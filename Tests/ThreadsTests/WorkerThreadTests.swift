import Foundation
import Synchronization
import Testing
import Threads

@Suite(.timeLimit(.minutes(1))) struct WorkerThreadTests {
    /// Linux keeps 15 bytes of a thread's name and refuses a longer one (the thread then
    /// showed its creator's name, `oot.default-qos`, in `top -H` and `perf`). A cut through a
    /// multi-byte character keeps the bytes before the cut.
    @Test func threadsCarryTheirShortNameAsTheSystemShowsIt() {
        let cases: [(given: String, shown: [UInt8])] = [
            ("clusterd-archive-sync", Array("cd-archive-sync".utf8)), ("clusterd-jobs", Array("cd-jobs".utf8)),
            ("clusterd-am-a-very-long-receiver", Array("cd-am-a-very-lo".utf8)), ("lease", Array("lease".utf8)),
            ("clusterd-am-xxxxxxxxäbc", Array("cd-am-xxxxxxxx".utf8) + [0xC3]),
        ]
        for (given, shown) in cases {
            let seen = Mutex<[UInt8]>([])
            let worker = WorkerThread()
            worker.start(name: given) {
                let comm = FileManager.default.contents(atPath: "/proc/thread-self/comm").map { Array($0) } ?? []
                seen.withLock { $0 = comm.last == 0x0A ? Array(comm.dropLast()) : comm }
            }
            worker.stop()
            #expect(seen.withLock { $0 } == shown, "started as \(given)")
        }
    }
}
