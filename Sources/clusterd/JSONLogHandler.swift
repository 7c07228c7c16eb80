import Foundation
import Logging
import Model

/// One JSON object per log line on standard error (`--log-format json`), for log shippers:
/// `{"time", "level", "label", "message", <metadata...>}`.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    private static let lock = NSLock()

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var b = JSONObjectBuilder()
        b.add("time", ISO8601DateFormatter().string(from: Date()))
        b.add("level", event.level.rawValue)
        b.add("label", label)
        b.add("message", event.message.description)
        if let error = event.error { b.add("error", "\(error)") }
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }).sorted(by: { $0.key < $1.key }) {
            b.add(key, "\(value)")
        }
        let bytes = Data((b.value.jsonText + "\n").utf8)
        Self.lock.lock()
        FileHandle.standardError.write(bytes)
        Self.lock.unlock()
    }
}
