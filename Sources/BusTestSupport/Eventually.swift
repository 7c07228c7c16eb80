import Foundation

/// A condition that did not come true in time; `description` says what was awaited and what
/// was seen last.
public struct NotInTime: Error, CustomStringConvertible {
    public let description: String
}

/// Returns as soon as `condition` holds (checked every 50 ms): tests wait for an event, not
/// for a time. `timeout` only bounds a bug; on it, throws ``NotInTime`` with `state()`.
public func eventually(_ what: String, timeout: TimeInterval = 60, state: () -> String = { "" },
                       _ condition: () throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while (try? condition()) != true {
        guard Date() < deadline else { throw NotInTime(description: "timed out waiting for \(what) \(state())") }
        try await Task.sleep(for: .milliseconds(50))
    }
}
