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

/// The registry over request/reply: `fleet.<organization>.api.<verb>`.
extension FleetService {
    /// The registry endpoints, served by the `clusterd` micro service.
    package var endpoints: [MicroService.Endpoint] {
        Self.verbs.map { verb in
            var endpoint = MicroService.Endpoint(name: "fleet-\(verb)", subject: "fleet.*.api.\(verb)",
                                                 metadata: ["description": "fleet registry: \(verb) (organization = second subject token)"]) { [self] m throws(MicroService.Failure) in
                try answer(verb, m)
            }
            endpoint.before = MicroService.StateRead(lock: lock) { [self] m in before(verb, m).jsonBytes }
            return endpoint
        } + [MicroService.Endpoint(name: "fleet-api", subject: "fleet.*.api",
                                   metadata: ["description": "fleet registry without a verb: answers 400 with the verbs"]) { m throws(MicroService.Failure) in
            // A request without a verb would otherwise wait out its whole timeout for nobody.
            throw MicroService.Failure(400, "subject must be fleet.<organization>.api.<verb>; verbs: \(Self.verbs.joined(separator: ", "))")
        }]
    }

    func answer(_ endpoint: String, _ message: BusMessage) throws(MicroService.Failure) -> [UInt8] {
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
                let server = try registry.register(org, request, now: now, newID: Self.requestID(message))
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
                let (id, servers, timeout) = try registry.createOperation(org, request, now: now, id: Self.requestID(message))
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
            return reply.jsonBytes
        } catch let f as FleetRegistry.Failure {
            throw MicroService.Failure(f.code, f.description)
        } catch {
            throw .answer(for: error)
        }
    }

    /// The record a changing verb acts on as it stands: the server (register, update,
    /// deregister) or group (save, delete) it names; `null` when there is none yet.
    func before(_ verb: String, _ message: BusMessage) -> JSONValue {
        let tokens = message.subject.split(separator: ".")
        guard tokens.count >= 4, let request = try? JSONValue.parse(message.data) else { return .null }
        let org = String(tokens[1])
        do {
            switch verb {
            case "register", "update", "deregister":
                let key = verb == "register" ? request["name"]?.stringValue : request["id"]?.stringValue ?? request["name"]?.stringValue
                return try key.flatMap { try registry.server(org, $0) }?.json ?? .null
            case "group.save", "group.delete":
                return try request["name"]?.stringValue.map { try registry.group(org, $0) } ?? .null
            default:
                return .null
            }
        } catch let failure as FleetRegistry.Failure where failure.code == 404 {
            return .null  // no such group yet
        } catch {
            return .unreadable(error)
        }
    }

    /// The registry's request verbs.
    static let verbs = ["register", "update", "deregister", "get", "list", "summary", "checks", "group.save", "group.get", "group.list",
                        "group.delete", "operation.start", "operation.get", "operation.list", "metrics"]

    /// A new record's id from the request itself (its reply inbox and body), UUID-shaped: every
    /// replica runs the request (``MicroService/Endpoint/everyReplica``) and must give the
    /// record the same id.
    static func requestID(_ message: BusMessage) -> String {
        let key = Array((message.reply ?? message.subject).utf8) + [0] + message.data
        let hex = ContentHash.hex([1] + key) + ContentHash.hex([2] + key)
        let c = Array(hex)
        return [c[0..<8], c[8..<12], c[12..<16], c[16..<20], c[20..<32]].map { String($0) }.joined(separator: "-")
    }

}
