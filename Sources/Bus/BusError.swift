import CNats

/// A failed bus operation, with what an operator needs to act on it.
public enum BusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No reply within the timeout (request, fetch with nothing to fetch, flush).
    case timeout(operation: String)
    /// A request found no subscriber on its subject.
    case noResponders(subject: String)
    /// A key, stream or consumer that does not exist.
    case notFound(operation: String)
    /// The connection is closed.
    case closed
    /// Any other libnats failure: status text, the library's last error and the JetStream
    /// error code when there is one (e.g. 10058 for a stream that exists with another config).
    case failed(operation: String, status: String, detail: String, jetStreamCode: Int)

    public var description: String {
        switch self {
        case .timeout(let op): "\(op): timed out"
        case .noResponders(let subject): "request on \(subject): no responders (is the service running?)"
        case .notFound(let op): "\(op): not found"
        case .closed: "connection closed"
        case .failed(let op, let status, let detail, let code):
            "\(op): \(status)" + (detail.isEmpty || detail == status ? "" : " (\(detail))") + (code != 0 ? " [JetStream error \(code)]" : "")
        }
    }

    /// What the broker has contradicts what was asked for (a consumer reading another
    /// subject): retrying cannot help.
    public var isMismatch: Bool {
        if case .failed(_, "mismatch", _, _) = self { return true }
        return false
    }

    /// The JetStream error code, or 0.
    public var jetStreamCode: Int {
        if case .failed(_, _, _, let code) = self { return code }
        return 0
    }

    /// Maps a libnats status to an error; call on the thread that made the failing call
    /// (the library's last-error text is thread-local).
    static func from(_ status: natsStatus, _ operation: String, subject: String = "", jsErr: jsErrCode = jsErrCode(0)) -> BusError {
        switch status {
        case NATS_TIMEOUT: return .timeout(operation: operation)
        case NATS_NO_RESPONDERS: return .noResponders(subject: subject)
        case NATS_NOT_FOUND: return .notFound(operation: operation)
        case NATS_CONNECTION_CLOSED: return .closed
        default:
            let text = String(cString: natsStatus_GetText(status))
            var last = natsStatus(0)
            let detail = nats_GetLastError(&last).map { String(cString: $0) } ?? ""
            return .failed(operation: operation, status: text, detail: detail, jetStreamCode: Int(jsErr.rawValue))
        }
    }
}

/// Throws unless `status` is NATS_OK.
@inline(__always)
func check(_ status: natsStatus, _ operation: @autoclosure () -> String, subject: String = "", jsErr: jsErrCode = jsErrCode(0)) throws(BusError) {
    if status != NATS_OK { throw BusError.from(status, operation(), subject: subject, jsErr: jsErr) }
}
