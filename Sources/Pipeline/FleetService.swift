import Alerts
import Bus
import Fleet
import Foundation
import Health
import Logging
import Model
import Store

/// The fleet side of clusterd: the registry API on `fleet.<org>.api.<verb>` (request/reply;
/// the organization is the subject's second token, so broker permissions on `fleet.<org>.>`
/// isolate organizations), heartbeats on `fleet.<org>.<server>.heartbeat`, and the poller
/// that checks `GET {api_url}/health` and heartbeat silence, stores every check and turns
/// every change of health into an alert (`clusterd.alert.<severity>.<org>.<server>`).
public final class FleetService: @unchecked Sendable {
    let registry: FleetRegistry
    let book: AlertBook
    let publisher: OutboxPublisher
    let config: ClusterdConfig
    let counters: PipelineCounters
    let logger: Logger
    let lock = NSLock()
    let probe: HTTPProbe
    private let worker = WorkerThread()
    private var subscriptions: [BusSubscription] = []

    /// The API endpoints (for the micro service) and the heartbeat subscription; the poller
    /// starts with ``start()``.
    public init(connection: BusConnection, database: Database, alertDatabase: Database, publisher: OutboxPublisher,
                config: ClusterdConfig, counters: PipelineCounters, logger: Logger) throws {
        registry = FleetRegistry(database: database)
        book = AlertBook(database: alertDatabase, prefix: config.health.alertPrefix, resendInterval: Int64(config.health.resendIntervalSeconds))
        self.publisher = publisher
        probe = HTTPProbe(timeout: Double(config.fleet.timeoutSeconds))
        self.config = config
        self.counters = counters
        self.logger = logger
        subscriptions.append(try connection.subscribe("fleet.*.*.heartbeat", queue: config.intake.queueGroup) { [weak self] m in
            self?.heartbeat(m)
        })
        try connection.flush()
    }

    /// The registry endpoints, served by the `clusterd` micro service.
    var endpoints: [MicroService.Endpoint] {
        ["register", "update", "deregister", "get", "list", "summary", "checks"].map { verb in
            MicroService.Endpoint(name: "fleet-\(verb)", subject: "fleet.*.api.\(verb)",
                                  metadata: ["description": "fleet registry: \(verb) (organization = second subject token)"]) { [self] m throws(MicroService.Failure) in
                try answer(verb, m)
            }
        }
    }

    private func answer(_ verb: String, _ message: BusMessage) throws(MicroService.Failure) -> [UInt8] {
        let tokens = message.subject.split(separator: ".")
        guard tokens.count == 4 else { throw MicroService.Failure(400, "subject must be fleet.<organization>.api.<verb>") }
        let org = String(tokens[1])
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
                    reply = .object([("server", try registry.deregister(org, key).json)])
                } else {
                    guard let server = try registry.server(org, key) else { throw MicroService.Failure(404, "no server \(key) in \(org)") }
                    reply = verb == "get" ? .object([("server", server.json)])
                        : .object([("checks", .array(try registry.checks(server, limit: try o.int("limit", 1...1000) ?? 50)))])
                }
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

    private func heartbeat(_ message: BusMessage) {
        let tokens = message.subject.split(separator: ".").map(String.init)
        guard tokens.count == 4 else { return }
        let version = (try? JSONValue.parse(message.data))?["version"]?.stringValue
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
            while !worker.isStopping {
                if Date().timeIntervalSince(last) >= interval {
                    last = Date()
                    pollOnce()
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
        let results = ResultsBox(count: servers.count)
        let limit = DispatchSemaphore(value: max(1, config.fleet.concurrency))
        let group = DispatchGroup()
        for (i, server) in servers.enumerated() {
            limit.wait()
            group.enter()
            // Own threads, not the dispatch pool: each check blocks until URLSession answers,
            // and URLSession answers on pool threads — blocking the pool starves it for seconds.
            Thread { [self] in
                results.set(i, check(server))
                limit.signal()
                group.leave()
            }.start()
        }
        group.wait()
        let now = Int64(Date().timeIntervalSince1970)
        var transitions: [HealthTransition] = []
        lock.lock()
        for (server, outcome) in zip(servers, results.all) {
            guard let (result, checked) = outcome else { continue }
            do {
                let previous = try registry.record(server, result, at: now, checked: checked)
                counters.add("fleet.checks.\(result.status)")
                if previous != result.status { transitions.append(Self.transition(server, from: previous, to: result, at: now)) }
            } catch {
                logger.error("fleet check not stored", metadata: ["server": "\(server.name)", "error": "\(error)"])
            }
        }
        lock.unlock()
        do {
            try book.record(transitions, now: now)
            try publisher.drain()
        } catch {
            logger.error("fleet alerts not recorded yet", metadata: ["error": "\(error)"])
        }
    }

    /// The server's health now: the pull check (when it has an API URL), made unreachable by
    /// heartbeat silence beyond its allowance. Returns nil when there is nothing to judge yet.
    func check(_ server: ManagedServer) -> (HealthCheckResult, checked: Bool)? {
        let now = Int64(Date().timeIntervalSince1970)
        var result: HealthCheckResult?
        if !server.apiURL.isEmpty, let url = URL(string: server.apiURL.hasSuffix("/") ? server.apiURL + "health" : server.apiURL + "/health") {
            let token = Self.token(server.tokenRef)
            let r = probe.get(url, token: token, timeout: Double(config.fleet.timeoutSeconds))
            result = HealthCheckResult.interpret(httpStatus: r.status, body: r.body, transportError: r.error, milliseconds: r.milliseconds)
        }
        if server.heartbeatSeconds > 0 {
            let seen = server.lastSeenAt ?? server.createdAt
            if now - seen > server.heartbeatSeconds {
                var silent = result ?? HealthCheckResult(status: "unreachable", error: "")
                silent.status = "unreachable"
                silent.error = "no heartbeat for \(now - seen) s (allowance \(server.heartbeatSeconds) s)"
                return (silent, result != nil)
            }
            if result == nil, server.lastSeenAt != nil { return (HealthCheckResult(status: "healthy", error: ""), false) }
        }
        return result.map { ($0, true) }
    }

    /// The token a reference names (`env:NAME`, `file:/path`); nil when none or unreadable.
    static func token(_ ref: String) -> String? {
        if ref.hasPrefix("env:") { return ProcessInfo.processInfo.environment[String(ref.dropFirst(4))] }
        if ref.hasPrefix("file:"), let data = FileManager.default.contents(atPath: String(ref.dropFirst(5))) {
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return nil
    }

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

    final class ResultsBox: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [(HealthCheckResult, checked: Bool)?]
        init(count: Int) { items = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ v: (HealthCheckResult, checked: Bool)?) { lock.lock(); items[i] = v; lock.unlock() }
        var all: [(HealthCheckResult, checked: Bool)?] { lock.lock(); defer { lock.unlock() }; return items }
    }
}
