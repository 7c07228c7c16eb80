import Foundation

/// Starts child processes one at a time. Foundation's `Process` learns of a child's exit when
/// a socket only that child holds closes, and closes the parent's other descriptors in the
/// child by a list made just before its spawn: a `Process` started on another thread in
/// between can inherit the first one's socket, and then the first exit is never seen —
/// `waitUntilExit()` spins forever and the child stays a zombie (seen once in the test suite:
/// a nats-server stopped while two dozen suites started theirs). Spawns made here never overlap.
public enum ChildProcess {
    private static let spawning = NSLock()

    /// Runs `process` (`Process.run()`), no other start made here under way meanwhile.
    public static func run(_ process: Process) throws {
        spawning.lock()
        defer { spawning.unlock() }
        try process.run()
    }

    /// Waits until `pid`, a child of this process, has exited, without reaping it (its
    /// `Process` still records the exit): a wait that does not depend on Foundation seeing it.
    public static func waitForExit(of pid: Int32) {
        while true {
            var info = siginfo_t()
            let rc = waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT)
            if rc == 0 || errno != EINTR { return }  // exited, or already reaped (ECHILD)
        }
    }
}
