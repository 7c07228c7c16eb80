import Foundation
import Model
import Store

/// One administrative action as it was asked for and answered: who, what, when, the request,
/// the state it acted on before, and the result (the state after, as the action answered it,
/// or why it was refused).
public struct AuditEntry: Sendable, Equatable {
    /// Epoch seconds.
    public var at: Int64
    /// Who asked: the `Clusterd-Actor` header, the request's own `by`/`createdBy`/`initiatedBy`,
    /// or for the fleet registry the organization.
    public var actor: String
    /// What was acted on: `maintenance`, `jobs`, `dlq`, `config`, `fleet`.
    public var resource: String
    /// The verb: `create`, `protect`, `replay`, `register`, ...
    public var action: String
    /// The request subject.
    public var subject: String
    /// The request body (JSON, or the text as sent).
    public var request: JSONValue
    /// What the action acted on as it stood before it ran (`null`: nothing yet, or the action
    /// keeps no record — it was refused before reading, or it only re-sends).
    public var before: JSONValue
    /// `ok` or `refused`.
    public var outcome: String
    /// The reply (the state after) or the refusal's reason.
    public var result: JSONValue

    /// An entry.
    public init(at: Int64, actor: String, resource: String, action: String, subject: String, request: JSONValue, before: JSONValue = .null,
                outcome: String, result: JSONValue) {
        self.at = at
        self.actor = actor
        self.resource = resource
        self.action = action
        self.subject = subject
        self.request = request
        self.before = before
        self.outcome = outcome
        self.result = result
    }

    /// As published on `clusterd.audit.<resource>` and listed by `clusterd.api.audit.list`.
    public func json(id: Int64) -> JSONValue {
        var b = JSONObjectBuilder()
        b.add("id", id)
        b.add("at", at)
        b.add("actor", actor)
        b.add("resource", resource)
        b.add("action", action)
        b.add("subject", subject)
        b.add("outcome", outcome)
        b.add("request", request)
        b.add("before", before)
        b.add("result", result)
        return b.value
    }
}

/// The `audit_log` table: every administrative action, kept `publish.audit_retention_days`.
public struct AuditLog {
    /// The table.
    public static let migrations = [
        Migration(module: "audit", version: 1, sql: """
            CREATE TABLE audit_log (
                id INTEGER PRIMARY KEY,
                at INTEGER NOT NULL,
                actor TEXT NOT NULL,
                resource TEXT NOT NULL,
                action TEXT NOT NULL,
                subject TEXT NOT NULL,
                outcome TEXT NOT NULL,
                request TEXT NOT NULL,
                result TEXT NOT NULL);
            CREATE INDEX audit_log_at ON audit_log (at);
            CREATE INDEX audit_log_resource ON audit_log (resource, at);
            """),
        Migration(module: "audit", version: 2, sql: "ALTER TABLE audit_log ADD COLUMN before TEXT NOT NULL DEFAULT 'null';"),
    ]

    let database: Database

    /// The log in `database` (migrated with ``migrations``).
    public init(_ database: Database) { self.database = database }

    /// Records `entry`; its row id.
    public func append(_ e: AuditEntry) throws(StoreError) -> Int64 {
        try database.prepare("""
            INSERT INTO audit_log (at, actor, resource, action, subject, outcome, request, result, before) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).run([.integer(e.at), .text(e.actor), .text(e.resource), .text(e.action), .text(e.subject), .text(e.outcome),
                      .text(e.request.jsonText), .text(e.result.jsonText), .text(e.before.jsonText)])
        return database.lastInsertRowID
    }

    /// Entries newest first, by resource, actor and time range (epoch seconds); and how many match.
    public func list(resource: String?, actor: String?, from: Int64?, to: Int64?, limit: Int64, offset: Int64) throws(StoreError) -> (entries: [JSONValue], total: Int64) {
        var clauses: [String] = [], values: [SQLValue] = []
        if let resource { clauses.append("resource = ?"); values.append(.text(resource)) }
        if let actor { clauses.append("actor = ?"); values.append(.text(actor)) }
        if let from { clauses.append("at >= ?"); values.append(.integer(from)) }
        if let to { clauses.append("at <= ?"); values.append(.integer(to)) }
        let filter = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
        let total = try database.prepare("SELECT count(*) FROM audit_log" + filter).first(values) { $0.int(0) } ?? 0
        let rows = try database.prepare("""
            SELECT id, at, actor, resource, action, subject, outcome, request, result, before FROM audit_log\(filter) ORDER BY id DESC LIMIT ? OFFSET ?
            """).rows(values + [.integer(limit), .integer(offset)]) { r in
            func stored(_ column: Int32) -> JSONValue { (try? JSONValue.parse(Array(r.text(column).utf8))) ?? .string(r.text(column)) }
            return AuditEntry(at: r.int(1), actor: r.text(2), resource: r.text(3), action: r.text(4), subject: r.text(5), request: stored(7),
                              before: stored(9), outcome: r.text(6), result: stored(8)).json(id: r.int(0))
        }
        return (rows, total)
    }

    /// Removes entries older than `before` (epoch seconds); how many.
    @discardableResult
    public func prune(before: Int64) throws(StoreError) -> Int {
        try database.prepare("DELETE FROM audit_log WHERE at < ?").run([.integer(before)])
        return database.changes
    }
}
