import Audit
import Bus
import Foundation
import Intake
import Logging
import Model
import Store

/// Records every administrative action — maintenance windows, protect/unprotect, dead-letter
/// replay, configuration reload, fleet register/update/deregister, groups, operations — in the
/// `audit_log` table and on `clusterd.audit.<resource>` (through the outbox), with who asked,
/// the request, the state it acted on before (``MicroService/Endpoint/before``) and the answer
/// (the state after, or the refusal). Queries are not recorded.
public struct AuditedEndpoints: Sendable {
    let writer: DatabaseWriter
    let publisher: OutboxPublisher
    let prefix: String
    let logger: Logger
    let clock: @Sendable () -> Int64

    /// The header naming who asks (clusterd's CLI sends `$USER`).
    public static let actorHeader = "Clusterd-Actor"
    /// Fleet verbs that change the registry.
    static let fleetChanges: Set<String> = ["register", "update", "deregister", "group.save", "group.delete", "operation.start"]

    /// Records through `writer` and publishes on `<prefix>.<resource>` through `publisher`.
    public init(writer: DatabaseWriter, publisher: OutboxPublisher, logger: Logger, prefix: String = "clusterd.audit",
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.writer = writer
        self.publisher = publisher
        self.logger = logger
        self.prefix = prefix
        self.clock = clock
    }

    /// Whether `endpoint` is administrative: `clusterd.admin.*` or the fleet registry — what
    /// changes what a replica keeps (its changing verbs are recorded here).
    public static func isAdministrative(_ endpoint: MicroService.Endpoint) -> Bool {
        endpoint.subject.hasPrefix("clusterd.admin.") || endpoint.subject.hasPrefix("fleet.")
    }

    /// `endpoints` with the administrative ones recorded (and refused without an actor).
    public func wrap(_ endpoints: [MicroService.Endpoint]) -> [MicroService.Endpoint] {
        endpoints.map { e in
            guard Self.isAdministrative(e) else { return e }
            let handler = e.handler, state = e.before
            var wrapped = MicroService.Endpoint(name: e.name, subject: e.subject, metadata: e.metadata) { [self] message throws(MicroService.Failure) in
                guard let (resource, action) = Self.action(of: message.subject) else { return try handler(message) }
                guard let actor = Self.actor(of: message) else {
                    let refusal = MicroService.Failure(400, "who asks? set the header \(Self.actorHeader) (clusterd's CLI sends $USER) or the request's \"by\"")
                    record(message, actor: "unknown", resource: resource, action: action, outcome: "refused", result: .string(refusal.description))
                    throw refusal
                }
                // The state before and the answer under the endpoint's lock: nothing changes between them.
                let (before, answer) = { () -> (JSONValue, Result<[UInt8], MicroService.Failure>) in
                    state?.lock?.lock()
                    defer { state?.lock?.unlock() }
                    let before = state.map { Self.json($0.read(message)) } ?? .null
                    do throws(MicroService.Failure) { return (before, .success(try handler(message))) } catch { return (before, .failure(error)) }
                }()
                switch answer {
                case .success(let reply):
                    record(message, actor: actor, resource: resource, action: action, before: before, outcome: "ok", result: Self.json(reply))
                    return reply
                case .failure(let error):
                    record(message, actor: actor, resource: resource, action: action, before: before, outcome: "refused",
                           result: .string(error.description))
                    throw error
                }
            }
            wrapped.everyReplica = e.everyReplica
            wrapped.before = e.before
            return wrapped
        }
    }

    /// The resource and verb of a request that changes something (nil: a query).
    static func action(of subject: String) -> (resource: String, action: String)? {
        let tokens = subject.split(separator: ".").map(String.init)
        if tokens.first == "clusterd", tokens.count >= 4, tokens[1] == "admin" {
            let action = tokens[3...].joined(separator: ".")
            return ["list", "get"].contains(action) ? nil : (tokens[2], action)
        }
        if tokens.first == "fleet", tokens.count >= 4, tokens[2] == "api" {
            let action = tokens[3...].joined(separator: ".")
            return fleetChanges.contains(action) ? ("fleet", action) : nil
        }
        return nil
    }

    /// Who asks: the header, the request's own field, or for the fleet registry its organization.
    static func actor(of message: BusMessage) -> String? {
        if let actor = message.header(actorHeader), !actor.isEmpty { return actor }
        if let request = try? JSONValue.parse(message.data) {
            for key in ["by", "createdBy", "initiatedBy"] {
                if let actor = request[key]?.stringValue, !actor.isEmpty { return actor }
            }
        }
        let tokens = message.subject.split(separator: ".")
        if tokens.first == "fleet", tokens.count > 1 { return "organization \(tokens[1])" }
        return nil
    }

    /// JSON text as a value (or, not JSON, as a string).
    static func json(_ text: [UInt8]) -> JSONValue {
        (try? JSONValue.parse(text)) ?? .string(String(decoding: text, as: UTF8.self))
    }

    private func record(_ message: BusMessage, actor: String, resource: String, action: String, before: JSONValue = .null,
                        outcome: String, result: JSONValue) {
        let request = message.data.isEmpty ? JSONValue.object([]) : Self.json(message.data)
        let entry = AuditEntry(at: clock(), actor: actor, resource: resource, action: action, subject: message.subject,
                               request: request, before: before, outcome: outcome, result: result)
        // The same id on every replica (each runs the action): the request's inbox and body.
        let id = "audit-" + ContentHash.hex(Array((message.reply ?? "").utf8) + [0] + Array(message.subject.utf8) + [0] + message.data)
        do {
            try writer.transaction { db in
                let row = try AuditLog(db).append(entry)
                try Outbox(db).append(OutboxMessage(subject: "\(prefix).\(resource)", messageID: id, payload: entry.json(id: row).jsonBytes))
            }
            try publisher.drain()
        } catch {
            // The action itself stands; its record is not retried: said loudly, with what it was.
            logger.error("audit record failed", metadata: ["subject": "\(message.subject)", "actor": "\(actor)", "outcome": "\(outcome)",
                                                           "error": "\(error)"])
        }
    }
}
