import BusTestSupport
import Foundation
import Synchronization
import Testing

/// `ChildProcess.run`: processes started at once from several threads — long-lived ones
/// beside short ones, as the suites start their nats-servers — never hide a short one's exit.
/// Started with `Process.run()` directly, 1–9 of these 320 short processes stayed "running"
/// for as long as a long-lived one held the socket Foundation watches (and `waitUntilExit()`
/// spun: the hang the suite once showed in `NATSServer.stop()`).
@Suite(.timeLimit(.minutes(1))) struct ChildProcessTests {
    @Test func concurrentStartsNeverHideAnExit() async throws {
        let started = Mutex<(long: [Process], short: [Process])>(([], []))
        let threads = (0..<8).map { _ in
            Thread {
                for _ in 0..<40 {
                    let long = Process(), short = Process()
                    long.executableURL = URL(fileURLWithPath: "/bin/sleep")
                    long.arguments = ["30"]
                    short.executableURL = URL(fileURLWithPath: "/bin/true")
                    try? ChildProcess.run(long)
                    try? ChildProcess.run(short)
                    started.withLock { $0.long.append(long); $0.short.append(short) }
                }
            }
        }
        threads.forEach { $0.start() }
        defer { started.withLock { for p in $0.long where p.isRunning { p.terminate() } } }
        try await eventually("all 640 processes started", timeout: 30) { started.withLock { $0.short.count } == 320 }
        try await eventually("every short process seen exiting", timeout: 10,
                             state: { "\(started.withLock { $0.short.filter(\.isRunning).count }) still running" }) {
            started.withLock { $0.short.allSatisfy { !$0.isRunning } }
        }
    }
}
