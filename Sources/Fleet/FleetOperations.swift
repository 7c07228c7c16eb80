import Foundation
import Model
import Store

/// Fleet operations (restart_services, update_config, deploy_update or a named custom one):
/// the targets resolved to servers, and the audit record that follows the operation from
/// pending through running to completed, failed or partial, with every server's result.
extension FleetRegistry {
    /// Operation types the design names; any other name of letters, digits and `_` is a custom one.
    public static let operationTypes: Set<String> = ["restart_services", "update_config", "deploy_update"]

    /// Creates a pending operation from a request and returns it with its target servers.
    public func createOperation(_ organization: String, _ request: JSONValue, now: Int64, id: String) throws -> (id: String, servers: [ManagedServer], timeout: Int64) {
        let o = try StrictObject(request, allowed: ["type", "parameters", "servers", "groups", "filter", "initiatedBy", "timeoutSeconds"])
        guard let type = try o.string("type"), !type.isEmpty, type.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw Failure(code: 400, description: "type is required: restart_services, update_config, deploy_update or a custom name of letters, digits, _")
        }
        guard let initiatedBy = try o.string("initiatedBy"), !initiatedBy.isEmpty else {
            throw Failure(code: 400, description: "initiatedBy is required (the audit record names who asked)")
        }
        var targets: [String: ManagedServer] = [:]
        for name in (try o.array("servers") ?? []).compactMap(\.stringValue) {
            guard let s = try server(organization, name) else { throw Failure(code: 404, description: "no server \(name) in \(organization)") }
            targets[s.id] = s
        }
        for group in (try o.array("groups") ?? []).compactMap(\.stringValue) {
            for s in try members(organization, group: group) { targets[s.id] = s }
        }
        if let filter = o.raw("filter") {
            let f = try StrictObject(filter, allowed: ["tag", "region", "environment", "status", "health"], path: "filter")
            for s in try list(organization, status: try f.string("status"), health: try f.string("health"), region: try f.string("region"),
                              environment: try f.string("environment"), tag: try f.string("tag")) {
                targets[s.id] = s
            }
        }
        guard !targets.isEmpty else { throw Failure(code: 400, description: "the operation targets no server (give servers, groups or filter)") }
        let servers = targets.values.sorted { $0.name < $1.name }
        let parameters = o.raw("parameters") ?? .object([])
        let targetJSON = JSONValue.object([("servers", o.raw("servers") ?? .array([])), ("groups", o.raw("groups") ?? .array([])),
                                           ("filter", o.raw("filter") ?? .null)])
        try database.prepare("""
            INSERT INTO fleet_operation (id, organization, operation_type, parameters, targets, initiated_by, status, total_servers, created_at)
            VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)
            """).run([.text(id), .text(organization), .text(type), .text(parameters.jsonText), .text(targetJSON.jsonText), .text(initiatedBy),
                      .integer(Int64(servers.count)), .integer(now)])
        return (id, servers, try o.int("timeoutSeconds", 1...3600) ?? 30)
    }

    /// Marks an operation running.
    public func startOperation(_ id: String, now: Int64) throws {
        try database.prepare("UPDATE fleet_operation SET status = 'running', started_at = ? WHERE id = ?").run([.integer(now), .text(id)])
    }

    /// Records the per-server results and the outcome: completed (all ok), failed (none ok), partial.
    public func finishOperation(_ id: String, results: [(server: String, ok: Bool, detail: String)], now: Int64) throws -> String {
        let ok = results.filter(\.ok).count
        let status = ok == results.count ? "completed" : ok == 0 ? "failed" : "partial"
        let json = JSONValue.object(results.map { ($0.server, .object([("ok", .bool($0.ok)), ("detail", .string($0.detail))])) })
        let errors = results.filter { !$0.ok }.map { "\($0.server): \($0.detail)" }.joined(separator: "; ")
        try database.prepare("""
            UPDATE fleet_operation SET status = ?, completed_servers = ?, failed_servers = ?, results = ?, error_summary = ?, completed_at = ?
            WHERE id = ?
            """).run([.text(status), .integer(Int64(ok)), .integer(Int64(results.count - ok)), .text(json.jsonText), .text(errors),
                      .integer(now), .text(id)])
        return status
    }

    /// An operation of an organization as JSON.
    public func operation(_ organization: String, _ id: String) throws -> JSONValue? {
        try database.prepare("""
            SELECT id, operation_type, parameters, targets, initiated_by, status, total_servers, completed_servers, failed_servers, results,
                   error_summary, created_at, started_at, completed_at FROM fleet_operation WHERE organization = ? AND id = ?
            """).first([.text(organization), .text(id)], Self.operationRow)
    }

    /// The newest operations of an organization.
    public func operations(_ organization: String, limit: Int64) throws -> [JSONValue] {
        try database.prepare("""
            SELECT id, operation_type, parameters, targets, initiated_by, status, total_servers, completed_servers, failed_servers, results,
                   error_summary, created_at, started_at, completed_at FROM fleet_operation WHERE organization = ? ORDER BY created_at DESC LIMIT ?
            """).rows([.text(organization), .integer(limit)], Self.operationRow)
    }

    static func operationRow(_ r: Statement) -> JSONValue {
        func parsed(_ i: Int32) -> JSONValue { (try? JSONValue.parse(Array(r.text(i).utf8))) ?? .null }
        func time(_ i: Int32) -> JSONValue { r.isNull(i) ? .null : .integer(r.int(i)) }
        return .object([("id", .string(r.text(0))), ("type", .string(r.text(1))), ("parameters", parsed(2)), ("targets", parsed(3)),
                        ("initiatedBy", .string(r.text(4))), ("status", .string(r.text(5))), ("totalServers", .integer(r.int(6))),
                        ("completedServers", .integer(r.int(7))), ("failedServers", .integer(r.int(8))), ("results", parsed(9)),
                        ("errorSummary", .string(r.text(10))), ("createdAt", .integer(r.int(11))), ("startedAt", time(12)),
                        ("completedAt", time(13))])
    }
}
