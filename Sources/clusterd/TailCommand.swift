import ArgumentParser
import Bus
import Foundation
import Model

/// `clusterd tail`: follows alerts, dead letters or incoming events live.
struct TailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Follow alerts, dead letters or incoming events live (Ctrl-C stops).",
        discussion: "alerts: clusterd.alert.>; dlq: clusterd.dlq.>; events: cc.job.event, cc.node.state and cc.metrics.>."
    )

    @Argument(help: "alerts, dlq or events.") var what: String
    @Option(help: "Show only messages whose subject or text contains this.") var filter: String?
    @Option(help: "Exit after this many messages.") var count: Int?
    @Option(help: "NATS server URL (default $NATS_URL or nats://127.0.0.1:4222).") var server: String?
    @Flag(help: "Print payloads as they came.") var raw = false

    func run() throws {
        let subjects: [String]
        switch what {
        case "alerts": subjects = ["clusterd.alert.>"]
        case "dlq": subjects = ["clusterd.dlq.>"]
        case "events": subjects = ["cc.job.event", "cc.node.state", "cc.metrics.>"]
        default: throw ValidationError("tail alerts, dlq or events")
        }
        let colour = isatty(STDOUT_FILENO) == 1 && !raw
        let connection = try QueryCommand.connect(server, name: "clusterd-tail", timeout: 3)
        defer { connection.close() }
        let done = DispatchSemaphore(value: 0)
        let seen = Counter()
        let filter = self.filter, count = self.count, raw = self.raw
        let subscriptions = try subjects.map { subject in
            try connection.subscribe(subject) { message in
                let text = raw ? message.text : Self.line(message, colour: colour)
                if let filter, !message.subject.contains(filter) && !message.text.contains(filter) { return }
                FileHandle.standardOutput.write(Data((text + "\n").utf8))
                if let count, seen.increment() >= count { done.signal() }
            }
        }
        try connection.flush()
        done.wait()
        for s in subscriptions { s.unsubscribe() }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func increment() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n }
    }

    /// One readable line: time, subject, and the essentials of an alert or dead letter.
    static func line(_ m: BusMessage, colour: Bool) -> String {
        let time = ISO8601DateFormatter().string(from: Date())
        guard let v = try? JSONValue.parse(m.data), case .object = v else { return "\(time) \(m.subject) \(m.text)" }
        if let status = v["status"]?.stringValue, let labels = v["labels"] {
            let severity = labels["severity"]?.stringValue ?? "?"
            let paint = !colour ? "" : status == "resolved" ? "\u{1B}[32m" : severity == "crit" ? "\u{1B}[31m" : "\u{1B}[33m"
            let where_ = [labels["hostname"], labels["component"], labels["rack"]].compactMap { $0?.stringValue }.joined(separator: "/")
            return "\(time) \(paint)\(status.uppercased()) \(severity)\(colour ? "\u{1B}[0m" : "") \(labels["alertname"]?.stringValue ?? "") \(where_) #\(v["sequence"]?.jsonText ?? "") \(v["annotations"]?["summary"]?.stringValue ?? "")"
        }
        if let code = v["code"]?.stringValue, let reason = v["reason"]?.stringValue {
            return "\(time) \(colour ? "\u{1B}[31m" : "")\(v["stage"]?.stringValue ?? "") \(code)\(colour ? "\u{1B}[0m" : "") line \(v["line"]?.jsonText ?? "?"):\(v["column"]?.jsonText ?? "?") \(reason)"
        }
        return "\(time) \(m.subject) \(m.text)"
    }
}
