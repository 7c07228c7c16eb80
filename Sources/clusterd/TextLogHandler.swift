import Foundation
import Logging

/// The text log on standard error: `time level label: message key=value ...`, sorted
/// metadata, the level coloured when standard error is a terminal (and `NO_COLOR` unset).
/// Own code rather than swift-log's StreamLogHandler, which has no colour.
struct TextLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    private static let lock = NSLock()
    private static let colour = isatty(STDERR_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var level = event.level.rawValue
        if Self.colour {
            let code = switch event.level {
            case .trace, .debug: "2"          // dim
            case .info: "32"                  // green
            case .notice: "36"                // cyan
            case .warning: "33"               // yellow
            case .error, .critical: "1;31"    // bold red
            }
            level = "\u{1B}[\(code)m\(level)\u{1B}[0m"
        }
        var line = "\(ISO8601DateFormatter().string(from: Date())) \(level) \(label): \(event.message)"
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        for (key, value) in all.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        if let error = event.error { line += " error=\(error)" }
        let bytes = Data((line + "\n").utf8)
        Self.lock.withLock { FileHandle.standardError.write(bytes) }
    }
}
