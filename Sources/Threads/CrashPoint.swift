import Foundation

/// Fault injection for crash tests: with `CLUSTERD_CRASH_AT=<point>` in its environment the
/// process ends on the spot (`_exit(137)`: no clean-up, nothing flushed, as after SIGKILL)
/// when it reaches that point — a crash where a test could not place one by timing. Unset,
/// as in production, it costs one comparison.
public enum CrashPoint {
    static let armed = ProcessInfo.processInfo.environment["CLUSTERD_CRASH_AT"]

    /// Ends the process here when `point` is the armed one.
    public static func reached(_ point: String) {
        if let armed, armed == point { _exit(137) }
    }
}
