import Alerts
import Bus
import Config
import Fleet
import Foundation
import Threads
import Health
import Intake
import LineProtocol
import Logging
import Model
import Observability
import Store

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
    private let worker = WorkerThread()
    private var subscriptions: [BusSubscription] = []
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
        book = AlertBook(database: database, prefix: config.health.alertPrefix, resendInterval: Int64(config.health.resendIntervalSeconds))
        self.publisher = publisher
        probe = HTTPProbe(timeout: Double(config.fleet.timeoutSeconds))
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
        mirrorsToKV = config.intake.mode != "core"
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

    /// The registry endpoints, served by the `clusterd` micro service.
    package var endpoints: [MicroService.Endpoint] {
        Self.verbs.map { verb in
            MicroService.Endpoint(name: "fleet-\(verb)", subject: "fleet.*.api.\(verb)",
                                  metadata: ["description": "fleet registry: \(verb) (organization = second subject token)"]) { [self] m throws(MicroService.Failure) in
                try answer(verb, m)
            }
        } + [MicroService.Endpoint(name: "fleet-api", subject: "fleet.*.api",
                                   metadata: ["description": "fleet registry without a verb: answers 400 with the verbs"]) { m throws(MicroService.Failure) in
            // A request without a verb would otherwise wait out its whole timeout for nobody.
            throw MicroService.Failure(400, "subject must be fleet.<organization>.api.<verb>; verbs: \(Self.verbs.joined(separator: ", "))")
        }]
    }

    /// The registry's request verbs.
    static let verbs = ["register", "update", "deregister", "get", "list", "summary", "checks", "group.save", "group.get", "group.list",
                        "group.delete", "operation.start", "operation.get", "operation.list", "metrics"]

    private func answer(_ endpoint: String, _ message: BusMessage) throws(MicroService.Failure) -> [UInt8] {
        let tokens = message.subject.split(separator: ".")
        guard tokens.count >= 4 else { throw MicroService.Failure(400, "subject must be fleet.<organization>.api.<verb>") }
        let org = String(tokens[1])
        let verb = tokens.dropFirst(3).joined(separator: ".")
        let now = Int64(Date().timeIntervalSince1970)
        lock.lock()
        defer { lock.unlock() }
        do {
            let request = message.data.allSatisfy { $0 == 0x20 || $0 == 0x0a } ? JSONValue.object([]) : try JSONValue.parse(message.data)
            let reply: JSONValue
            switch verb {
            case "register":
                let server = try registry.register(org, request, now: now)
                logger.notice("fleet server registered", metadata: ["organization": "\(org)", "server": "\(server.name)"])
                reply = .object([("server", server.json)])
            case "update": reply = .object([("server", try registry.update(org, request, now: now).json)])
            case "deregister", "get", "checks":
                let o = try StrictObject(request, allowed: verb == "checks" ? ["name", "id", "limit"] : ["name", "id"])
                guard let key = try o.string("name") ?? o.string("id") else { throw MicroService.Failure(400, "name or id is required") }
                if verb == "deregister" {
                    let server = try registry.deregister(org, key)
                    // Its alert resolves with it (the book resolves only what it announced).
                    var gone = Self.transition(server, from: server.health, to: HealthCheckResult(status: "healthy", error: ""), at: now)
                    gone.summary = "\(server.name) was deregistered"
                    try book.record([gone], now: now)
                    if mirrorsToKV {
                        try outbox.append(OutboxMessage(subject: Self.kvSubject(server), messageID: "kv-fleet-\(server.id)-deleted",
                                                        payload: [], headers: ["KV-Operation": "DEL"]))
                    }
                    try publisher.drain()
                    logger.notice("fleet server deregistered", metadata: ["organization": "\(org)", "server": "\(server.name)"])
                    reply = .object([("server", server.json)])
                } else {
                    guard let server = try registry.server(org, key) else { throw MicroService.Failure(404, "no server \(key) in \(org)") }
                    reply = verb == "get" ? .object([("server", server.json)])
                        : .object([("checks", .array(try registry.checks(server, limit: try o.int("limit", 1...1000) ?? 50)))])
                }
            case "group.save": reply = .object([("group", try registry.saveGroup(org, request, now: now))])
            case "group.get", "group.delete":
                guard let name = try StrictObject(request, allowed: ["name"]).string("name") else { throw MicroService.Failure(400, "name is required") }
                if verb == "group.get" {
                    reply = .object([("group", try registry.group(org, name))])
                } else {
                    try registry.deleteGroup(org, name)
                    reply = .object([("deleted", .string(name))])
                }
            case "group.list": reply = .object([("groups", .array(try registry.groups(org)))])
            case "operation.start":
                let (id, servers, timeout) = try registry.createOperation(org, request, now: now)
                logger.notice("fleet operation started", metadata: ["organization": "\(org)", "operation": "\(id)",
                                                                     "type": "\(request["type"]?.stringValue ?? "")",
                                                                     "by": "\(request["initiatedBy"]?.stringValue ?? "")", "servers": "\(servers.count)"])
                let body = JSONValue.object([("operationId", .string(id)), ("type", request["type"] ?? .null),
                                             ("parameters", request["parameters"] ?? .object([]))])
                fanOut(org: org, id: id, servers: servers, body: body, timeout: timeout)
                reply = .object([("operation", try registry.operation(org, id) ?? .null)])
            case "operation.get":
                guard let id = try StrictObject(request, allowed: ["id"]).string("id") else { throw MicroService.Failure(400, "id is required") }
                guard let op = try registry.operation(org, id) else { throw MicroService.Failure(404, "no operation \(id) in \(org)") }
                reply = .object([("operation", op)])
            case "operation.list":
                let limit = try StrictObject(request, allowed: ["limit"]).int("limit", 1...1000) ?? 50
                reply = .object([("operations", .array(try registry.operations(org, limit: limit)))])
            case "metrics":
                let o = try StrictObject(request, allowed: ["name", "period", "metric", "from", "to"])
                guard let name = try o.string("name") else { throw MicroService.Failure(400, "name is required") }
                reply = try registry.metrics(org, name, period: try o.string("period") ?? "1m", metric: try o.string("metric"),
                                             from: try o.int("from"), to: try o.int("to"))
            case "list":
                let o = try StrictObject(request, allowed: ["status", "health", "region", "environment", "tag"])
                let servers = try registry.list(org, status: try o.string("status"), health: try o.string("health"), region: try o.string("region"),
                                                environment: try o.string("environment"), tag: try o.string("tag"))
                reply = .object([("servers", .array(servers.map(\.json))), ("total", .integer(Int64(servers.count)))])
            default:
                reply = try registry.summary(org)
            }
            return Array(reply.jsonText.utf8)
        } catch let f as MicroService.Failure {
            throw f
        } catch let f as FleetRegistry.Failure {
            throw MicroService.Failure(f.code, f.description)
        } catch let e as JSONFieldError {
            throw MicroService.Failure(400, e.description)
        } catch {
            throw MicroService.Failure(error is JSONParseError ? 400 : 500, "\(error)")
        }
    }

    /// Puts the server's new health into the KV bucket (the database stays the source of truth).
    private func mirror(_ server: ManagedServer, _ result: HealthCheckResult, at now: Int64) {
        guard mirrorsToKV else { return }
        let value = JSONValue.object([("organization", .string(server.organization)), ("server", .string(server.name)),
                                      ("health", .string(result.status)), ("error", .string(result.error)), ("since", .integer(now))])
        do {
            try outbox.append(OutboxMessage(subject: Self.kvSubject(server), messageID: "kv-fleet-\(server.id)-\(now)-\(result.status)",
                                            payload: Array(value.jsonText.utf8)))
        } catch {
            counters.add("kv.fleet.errors")
            logger.warning("fleet health not mirrored to KV", metadata: ["server": "\(server.name)", "error": "\(error)"])
        }
    }

    /// Sends the operation to every target's `fleet.<org>.<server>.operation` subject (at most
    /// `fleet.concurrency` at a time, each waiting `timeout` seconds for its answer) on a
    /// thread of its own, then records the outcome: `{"ok": true}` counts as done; an error
    /// answer, no responder or no answer in time as failed.
    private func fanOut(org: String, id: String, servers: [ManagedServer], body: JSONValue, timeout: Int64) {
        let payload = Array(body.jsonText.utf8)
        Thread { [self] in
            lock.lock()
            try? registry.startOperation(id, now: Int64(Date().timeIntervalSince1970))
            lock.unlock()
            let results = IndexedResults<(server: String, ok: Bool, detail: String)>(count: servers.count, initial: ("", false, "not sent"))
            Self.concurrently(servers.count, limit: config.fleet.concurrency) { [self] i in
                let server = servers[i]
                let subject = "fleet.\(org).\(server.name).operation"
                do {
                    let reply = try connection.request(BusMessage(subject: subject, data: payload), timeout: .seconds(timeout))
                    let answer = try? JSONValue.parse(reply.data)
                    if answer?["ok"] == .bool(true) {
                        results.set(i, (server.name, true, answer?["message"]?.stringValue ?? "done"))
                    } else {
                        results.set(i, (server.name, false, answer?["error"]?.stringValue ?? "answered without ok: \(reply.text.prefix(200))"))
                    }
                } catch {
                    results.set(i, (server.name, false, "no answer within \(timeout) s (\(error))"))
                }
            }
            lock.lock()
            let status = (try? registry.finishOperation(id, results: results.all, now: Int64(Date().timeIntervalSince1970))) ?? "?"
            lock.unlock()
            counters.add("fleet.operations.\(status)")
            logger.notice("fleet operation finished", metadata: ["organization": "\(org)", "operation": "\(id)", "status": "\(status)"])
        }.start()
    }

    /// Runs `body(0..<count)` on threads of their own, at most `limit` at a time, and waits.
    /// Not the dispatch pool: each call blocks (HTTP, request/reply), and URLSession answers
    /// on pool threads — blocking the pool starves it for seconds.
    static func concurrently(_ count: Int, limit: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let slots = DispatchSemaphore(value: max(1, limit))
        let group = DispatchGroup()
        for i in 0..<count {
            slots.wait()
            group.enter()
            Thread {
                body(i)
                slots.signal()
                group.leave()
            }.start()
        }
        group.wait()
    }

    /// Pushed metrics: line protocol, a numeric field `value` named by the measurement
    /// (`cpu_percent value=12.5`) or several numeric fields named by their keys
    /// (`server cpu_percent=12.5,memory_percent=40`); timestamps s/ms/us/ns or none (now).
    /// A bad line goes to `clusterd.dlq.fleet` and the log; the others count.
    private func metrics(_ message: BusMessage) {
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
    private func misaddressed(_ message: BusMessage) {
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
                                                  payload: Array(b.value.jsonText.utf8))])
        }
    }

    private func publish(_ letters: [DeadLetter], about message: BusMessage) {
        publisher.deadLetters(letters, about: message, prefix: config.publish.deadLetterPrefix, counters: counters)
    }

    private func heartbeat(_ message: BusMessage) {
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

    /// Starts the poller: every `fleet.check_interval_seconds`, every watched server.
    public func start() {
        let interval = Double(config.fleet.checkIntervalSeconds)
        worker.start(name: "clusterd-fleet") { [self] in
            var last = Date.distantPast
            var pruned = Date.distantPast
            while !worker.isStopping {
                if Date().timeIntervalSince(last) >= interval {
                    last = Date()
                    pollOnce()
                }
                if Date().timeIntervalSince(pruned) >= 3600 {
                    pruned = Date()
                    lock.lock()
                    let now = Int64(Date().timeIntervalSince1970)
                    _ = try? registry.pruneMetrics(now: now)
                    _ = try? registry.pruneChecks(before: now - Int64(config.fleet.checkRetentionDays) * 86_400)
                    lock.unlock()
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    /// Stops the poller and the subscriptions.
    public func stop() {
        worker.stop()
        for s in subscriptions { s.unsubscribe() }
        subscriptions = []
    }

    /// One round over every watched server, at most `fleet.concurrency` checks at a time.
    func pollOnce() {
        let servers: [ManagedServer]
        lock.lock()
        do { servers = try registry.watched() } catch {
            lock.unlock()
            logger.error("fleet poll: cannot read servers", metadata: ["error": "\(error)"])
            return
        }
        lock.unlock()
        let results = IndexedResults<(HealthCheckResult, checked: Bool)?>(count: servers.count, initial: nil)
        Self.concurrently(servers.count, limit: config.fleet.concurrency) { [self] i in results.set(i, check(servers[i])) }
        let now = Int64(Date().timeIntervalSince1970)
        var transitions: [HealthTransition] = []
        lock.lock()
        for (server, outcome) in zip(servers, results.all) {
            guard let (result, checked) = outcome else { continue }
            do {
                let previous = try registry.record(server, result, at: now, checked: checked)
                counters.add("fleet.checks.\(result.status)")
                if previous != result.status {
                    transitions.append(Self.transition(server, from: previous, to: result, at: now))
                    mirror(server, result, at: now)
                }
            } catch {
                logger.error("fleet check not stored", metadata: ["server": "\(server.name)", "error": "\(error)"])
            }
        }
        do {
            try book.record(transitions, now: now)
        } catch {
            logger.error("fleet alerts not recorded yet", metadata: ["error": "\(error)"])
        }
        lock.unlock()
        do { try publisher.drain() } catch { logger.warning("outbox not published yet", metadata: ["error": "\(error)"]) }
    }

    /// The server's health now: the pull check (when it has an API URL), made unreachable by
    /// heartbeat silence beyond its allowance. Returns nil when there is nothing to judge yet.
    func check(_ server: ManagedServer) -> (HealthCheckResult, checked: Bool)? {
        var result: HealthCheckResult?
        if !server.apiURL.isEmpty, let url = URL(string: server.apiURL.hasSuffix("/") ? server.apiURL + "health" : server.apiURL + "/health") {
            let token = FleetRegistry.resolve(server.tokenRef)
            if !registry.isGranted(server) {
                // The grant was withdrawn after registration: the secret is not sent.
                result = HealthCheckResult(status: "unknown", error: "tokenRef \(server.tokenRef) is no longer granted to \(server.organization) for \(server.apiURL) (fleet.token_refs); not checked")
            } else if !server.tokenRef.isEmpty && token == nil {
                result = HealthCheckResult(status: "unknown", error: "tokenRef \(server.tokenRef) does not resolve on the clusterd host (unset or unreadable); not checked")
            } else {
                let r = probe.get(url, token: token, timeout: Double(config.fleet.timeoutSeconds))
                result = HealthCheckResult.interpret(httpStatus: r.status, body: r.body, transportError: r.error, milliseconds: r.milliseconds)
            }
        }
        if server.heartbeatSeconds > 0 {
            // Read again now: a round can take seconds, and heartbeats keep arriving meanwhile.
            lock.lock()
            let fresh = (try? registry.server(server.organization, server.id)) ?? server
            lock.unlock()
            let now = Int64(Date().timeIntervalSince1970)
            let seen = fresh.lastSeenAt ?? fresh.createdAt
            if now - seen > server.heartbeatSeconds {
                var silent = result ?? HealthCheckResult(status: "unreachable", error: "")
                silent.status = "unreachable"
                silent.error = "no heartbeat for \(now - seen) s (allowance \(server.heartbeatSeconds) s)"
                return (silent, result != nil)
            }
            if result == nil, fresh.lastSeenAt != nil { return (HealthCheckResult(status: "healthy", error: ""), false) }
        }
        return result.map { ($0, true) }
    }

    /// The token a reference names (`env:NAME`, `file:/path`); nil when none or unreadable.
    static let severities = ["degraded": Severity.warn, "critical": .crit, "unreachable": .crit, "unknown": .unknown]

    /// The alert transition of a health change: firing at the new severity, or resolved when
    /// healthy (the alert book publishes a resolve only for an alert it announced).
    static func transition(_ s: ManagedServer, from previous: String, to result: HealthCheckResult, at now: Int64) -> HealthTransition {
        let severity = severities[result.status]
        var t = HealthTransition(
            key: AlertKey(check: "fleet_health", cluster: s.organization, entity: s.name), scope: .node,
            status: severity == nil ? .resolved : .firing, severity: severity ?? severities[previous] ?? .unknown, placement: nil,
            startsAt: now, endsAt: severity == nil ? now : nil, flapping: false, value: result.responseTimeMilliseconds.map(Double.init),
            name: "Fleet server health",
            summary: severity == nil ? "\(s.name) is healthy" : "\(s.name) is \(result.status): \(result.error)", at: now)
        t.labels = [("organization", s.organization), ("server", s.name), ("region", s.region), ("environment", s.environment),
                    ("health", result.status)]
        return t
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
