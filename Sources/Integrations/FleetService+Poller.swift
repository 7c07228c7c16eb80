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

/// The pull checks: each watched server's `/health`
/// (and its heartbeat allowance), with alerts and KV mirror updates on every change; and
/// operations fanned out to servers.
extension FleetService {
    /// Drops pushed metrics past their retention and checks older than
    /// `fleet.check_retention_days` (each server's newest stays). Run by the scheduler.
    public func prune(now: Int64) {
        lock.lock()
        defer { lock.unlock() }
        _ = try? registry.pruneMetrics(now: now)
        _ = try? registry.pruneChecks(before: now - config.fleet.checkRetention.wholeSeconds)
    }

    /// Stops the subscriptions (the polls stop with the scheduler).
    public func stop() {
        for s in subscriptions { s.unsubscribe() }
        subscriptions = []
    }

    /// One round over every watched server, at most `fleet.concurrency` checks at a time.
    /// Run by the scheduler every `fleet.check_interval_seconds`, on a lane of its own.
    public func pollOnce() {
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
                let r = probe.get(url, token: token, timeout: config.fleet.timeout.secondsValue)
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

    /// Sends the operation to every target's `fleet.<org>.<server>.operation` subject (at most
    /// `fleet.concurrency` at a time, each waiting `timeout` seconds for its answer) on a
    /// thread of its own, then records the outcome: `{"ok": true}` counts as done; an error
    /// answer, no responder or no answer in time as failed.
    func fanOut(org: String, id: String, servers: [ManagedServer], body: JSONValue, timeout: Int64) {
        let payload = body.jsonBytes
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

    /// Puts the server's new health into the KV bucket (the database stays the source of truth).
    func mirror(_ server: ManagedServer, _ result: HealthCheckResult, at now: Int64) {
        guard mirrorsToKV else { return }
        let value = JSONValue.object([("organization", .string(server.organization)), ("server", .string(server.name)),
                                      ("health", .string(result.status)), ("error", .string(result.error)), ("since", .integer(now))])
        do {
            try outbox.append(OutboxMessage(subject: Self.kvSubject(server), messageID: "kv-fleet-\(server.id)-\(now)-\(result.status)",
                                            payload: value.jsonBytes))
        } catch {
            counters.add("kv.fleet.errors")
            logger.warning("fleet health not mirrored to KV", metadata: ["server": "\(server.name)", "error": "\(error)"])
        }
    }

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

    /// The alert severity of each unhealthy fleet status.
    static let severities = ["degraded": Severity.warn, "critical": .crit, "unreachable": .crit, "unknown": .unknown]
}
