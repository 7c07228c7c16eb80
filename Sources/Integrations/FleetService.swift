import Alerts
import Bus
import Config
import Fleet
import Foundation
import Health
import Intake
import LineProtocol
import Logging
import Model
import Observability
import Store
import Threads

/// The fleet side of clusterd: the registry API on `fleet.<org>.api.<verb>` (request/reply;
/// the organization is the subject's second token, so broker permissions on `fleet.<org>.>`
/// isolate organizations), heartbeats on `fleet.<org>.<server>.heartbeat`, and the poller
/// that checks `GET {api_url}/health` and heartbeat silence, stores every check and turns
/// every change of health into an alert (`clusterd.alert.<severity>.<org>.<server>`).
public final class FleetService: @unchecked Sendable {
    let registry: FleetRegistry
    let connection: BusConnection
    let book: AlertBook
    let publisher: OutboxPublisher
    let config: ClusterdConfig
    let counters: PipelineCounters
    let logger: Logger
    /// The writer's lock: registry and alert book share its connection.
    let lock: NSRecursiveLock
    let probe: HTTPProbe
    var subscriptions: [BusSubscription] = []
    /// KV bucket `clusterd_fleet` (`<org>.<server>` → health), when JetStream is there.
    /// Health changes also go to the `clusterd_fleet` KV bucket (JetStream mode).
    let mirrorsToKV: Bool
    let outbox: Outbox

    /// The KV bucket mirroring each server's health.
    public static let bucket = "clusterd_fleet"

    /// The subject that puts (or deletes) `server`'s key in ``bucket``.
    static func kvSubject(_ server: ManagedServer) -> String { "$KV.\(bucket).\(server.organization).\(server.name)" }

    /// The API endpoints (for the micro service) and the heartbeat subscription; the poller
    /// starts with ``start()``.
    public init(connection: BusConnection, writer: DatabaseWriter, publisher: OutboxPublisher,
                config: ClusterdConfig, counters: PipelineCounters, logger: Logger) throws {
        let database = writer.database
        registry = FleetRegistry(database: database, grants: config.fleet.tokenRefs)
        lock = writer.lock
        self.connection = connection
        book = AlertBook(database: database, prefix: config.health.alertPrefix, resendInterval: config.health.resendInterval.wholeSeconds)
        self.publisher = publisher
        probe = HTTPProbe(timeout: config.fleet.timeout.secondsValue)
        self.config = config
        self.counters = counters
        self.logger = logger
        // Operations in flight when clusterd stopped cannot finish: say so in their audit record.
        try writer.perform { db in
            try db.prepare("""
                UPDATE fleet_operation SET status = 'failed', error_summary = 'interrupted: clusterd stopped before it finished', completed_at = ?
                WHERE status IN ('pending', 'running')
                """).run([.integer(Int64(Date().timeIntervalSince1970))])
        }
        outbox = Outbox(database)
        mirrorsToKV = config.intake.mode != .core
        if mirrorsToKV {
            _ = try JetStream(connection).keyValue(bucket: Self.bucket, description: "clusterd: health of every fleet server (<org>.<server>)", history: 10,
                                                 replicas: config.intake.replicas)
        }
        subscriptions.append(try connection.subscribe("fleet.*.*.heartbeat", queue: config.intake.queueGroup) { [weak self] m in
            self?.heartbeat(m)
        })
        subscriptions.append(try connection.subscribe("fleet.*.*.metrics", queue: config.intake.queueGroup) { [weak self] m in
            self?.metrics(m)
        })
        // Near misses would otherwise vanish: a server name with a dot (one token too many)
        // or a suffix after the kind. Each gets a dead letter (and a 400 when it asks).
        for pattern in ["fleet.*.*.*.metrics", "fleet.*.*.*.heartbeat", "fleet.*.*.metrics.>", "fleet.*.*.heartbeat.>"] {
            subscriptions.append(try connection.subscribe(pattern, queue: config.intake.queueGroup) { [weak self] m in
                self?.misaddressed(m)
            })
        }
        try connection.flush()
    }

    /// Pushed metrics: line protocol, a numeric field `value` named by the measurement
    /// (`cpu_percent value=12.5`) or several numeric fields named by their keys
    /// (`server cpu_percent=12.5,memory_percent=40`); timestamps s/ms/us/ns or none (now).
    /// A bad line goes to `clusterd.dlq.fleet` and the log; the others count.
    func metrics(_ message: BusMessage) {
        let tokens = message.subject.split(separator: ".").map(String.init)
        // fleet.<org>.api.metrics is the registry's request endpoint, not a server called "api".
        guard tokens.count == 4, tokens[2] != "api" else { return }
        let now = Int64(Date().timeIntervalSince1970)
        var samples: [(metric: String, value: Double, time: Int64)] = []
        var letters: [DeadLetter] = []
        LineDecoder(precision: .nanoseconds).forEachLine(in: message.data) { entry in
            func reject(_ line: Int, _ column: Int, _ code: String, _ reason: String, _ raw: UnsafeBufferPointer<UInt8>) {
                letters.append(DeadLetter(stage: "fleet", message: message, line: line, column: column, code: code, reason: reason, raw: String(decoding: raw, as: UTF8.self), receivedAt: now))
            }
            switch entry {
            case .error(let e, let raw): reject(e.line, e.column, "syntax", e.reason.description, raw)
            case .point(let view):
                let time = view.timestamp.map(MetricLine.seconds(fromUnscaled:)) ?? now
                var line: [(metric: String, value: Double, time: Int64)] = []
                for field in view.fields {
                    guard let v = field.value.numericValue else {
                        reject(view.line, EventLine.column(of: field.key.start, in: view), "wrong_type", "field \(field.key.string) is not a number", view.raw)
                        return
                    }
                    line.append((field.key.equals("value") ? view.measurement.string : field.key.string, v, time))
                }
                samples += line
            }
        }
        if samples.isEmpty && letters.isEmpty {
            letters.append(DeadLetter(stage: "fleet", message: message, line: 1, column: 1, code: "empty_message", reason: "the message holds no line", raw: "", receivedAt: now))
        }
        lock.lock()
        let known = (try? registry.addMetrics(tokens[1], tokens[2], samples)) ?? false
        lock.unlock()
        counters.add(known ? "fleet.metric_samples" : "fleet.metric_samples_unknown_server", samples.count)
        publish(letters, about: message)
    }

    /// A fleet message on a subject of the wrong shape: one `bad_subject` dead letter, and a
    /// 400 to a requester.
    func misaddressed(_ message: BusMessage) {
        let tokens = message.subject.split(separator: ".")
        let kind = tokens.count == 5 && (tokens[4] == "metrics" || tokens[4] == "heartbeat") ? String(tokens[4]) : String(tokens[3])
        let reason = "subject \(message.subject) is not fleet.<organization>.<server>.\(kind): organization and server are one token each (no dots), nothing follows \(kind)"
        publish([DeadLetter(stage: "fleet", message: message, line: 0, column: 0, code: "bad_subject", reason: reason,
                            raw: String(decoding: message.data, as: UTF8.self), receivedAt: Int64(Date().timeIntervalSince1970))], about: message)
        if let reply = message.reply {
            var b = JSONObjectBuilder()
            b.add("ok", false)
            b.add("error", reason)
            try? publisher.enqueue([OutboxMessage(subject: reply, messageID: "reply-fleet-\(DeadLetter.contentHash(of: message))-\(reply)",
                                                  payload: b.value.jsonBytes)])
        }
    }

    func publish(_ letters: [DeadLetter], about message: BusMessage) {
        publisher.deadLetters(letters, about: message, prefix: config.publish.deadLetterPrefix, counters: counters)
    }

    func heartbeat(_ message: BusMessage) {
        let tokens = message.subject.split(separator: ".").map(String.init)
        guard tokens.count == 4 else { return }
        let body = try? JSONValue.parse(message.data)
        let version = body?["version"]?.stringValue
        var isObject = false
        if case .object = body { isObject = true }
        if !message.data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }), !isObject {
            // Still a sign of life; only the body is refused.
            publish([DeadLetter(stage: "fleet", message: message, line: 1, column: 1, code: "invalid_json", reason: "a heartbeat's body is empty or a JSON object like {\"version\":\"1.2.3\"}; this one was ignored (the heartbeat counts)",
                               raw: String(decoding: message.data, as: UTF8.self), receivedAt: Int64(Date().timeIntervalSince1970))], about: message)
        }
        lock.lock()
        defer { lock.unlock() }
        do {
            if try registry.heartbeat(tokens[1], tokens[2], version: version, now: Int64(Date().timeIntervalSince1970)) {
                counters.add("fleet.heartbeats")
            } else {
                counters.add("fleet.heartbeats_unknown")
                logger.warning("heartbeat of an unregistered server", metadata: ["subject": "\(message.subject)"])
            }
        } catch {
            logger.error("heartbeat not stored", metadata: ["error": "\(error)"])
        }
    }

    /// Results written by several threads, one slot each.
    final class IndexedResults<T>: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [T]
        init(count: Int, initial: T) { items = Array(repeating: initial, count: count) }
        func set(_ i: Int, _ v: T) { lock.lock(); items[i] = v; lock.unlock() }
        var all: [T] { lock.lock(); defer { lock.unlock() }; return items }
    }
}
