import Foundation
import Model
import Store

/// The fleet records of every organization: registration, heartbeats, health checks and
/// the summary. Every read and write is scoped to one organization.
public final class FleetRegistry: @unchecked Sendable {
    let database: Database

    /// A registry over a migrated database (one connection, used under the caller's lock or thread).
    /// Token-reference prefixes granted per organization (`fleet.token_refs`).
    public let grants: [String: [String]]

    /// A registry over `database`; `grants` are the token references each organization may use.
    public init(database: Database, grants: [String: [String]] = [:]) {
        self.database = database
        self.grants = grants
    }

    /// Whether `organization` may use the token reference `ref` for a server at `apiURL`
    /// (empty reference: no token, always). `env:` references match a granted `env:` prefix;
    /// `file:` references are normalised (`..`, symlinks) and must lie below a granted `file:`
    /// directory; and the URL's host must be granted too (`host:name` or `host:*.domain`),
    /// so a secret only ever goes where the operator allowed it (no URL: it is never sent).
    public static func granted(_ ref: String, apiURL: String, organization: String, grants: [String: [String]]) -> Bool {
        if ref.isEmpty { return true }
        let allowed = grants[organization] ?? []
        return refGranted(ref, allowed) && hostGranted(apiURL, allowed)
    }

    static func refGranted(_ ref: String, _ allowed: [String]) -> Bool {
        if ref.hasPrefix("env:") { return allowed.contains { $0.hasPrefix("env:") && $0.count > 4 && ref.hasPrefix($0) } }
        guard ref.hasPrefix("file:") else { return false }
        let path = URL(fileURLWithPath: String(ref.dropFirst(5))).standardizedFileURL.resolvingSymlinksInPath().path
        return allowed.contains { grant in
            guard grant.hasPrefix("file:") else { return false }
            var dir = URL(fileURLWithPath: String(grant.dropFirst(5))).standardizedFileURL.resolvingSymlinksInPath().path
            if !dir.hasSuffix("/") { dir += "/" }
            return path.hasPrefix(dir)
        }
    }

    static func hostGranted(_ apiURL: String, _ allowed: [String]) -> Bool {
        if apiURL.isEmpty { return true }
        guard let host = URL(string: apiURL)?.host?.lowercased(), !host.isEmpty else { return false }
        return allowed.contains { grant in
            guard grant.hasPrefix("host:") else { return false }
            let pattern = grant.dropFirst(5).lowercased()
            return pattern.hasPrefix("*.") ? host.hasSuffix(pattern.dropFirst()) : host == pattern
        }
    }

    /// The secret a token reference names: an environment variable of clusterd or a file's
    /// content (trimmed); nil when unset or unreadable.
    public static func resolve(_ ref: String) -> String? {
        if ref.hasPrefix("env:") { return ProcessInfo.processInfo.environment[String(ref.dropFirst(4))] }
        if ref.hasPrefix("file:"), let data = FileManager.default.contents(atPath: String(ref.dropFirst(5))) {
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return nil
    }

    /// Why a request was refused: 400 bad request, 404 unknown server.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let code: Int
        public let description: String
    }

    static let columns = """
        id, organization, name, description, hostname, api_url, token_ref, region, environment, status, health_status, version,
        tags, metadata, heartbeat_seconds, created_at, updated_at, last_seen_at, last_health_check_at
        """

    static func row(_ r: Statement) -> ManagedServer {
        var s = ManagedServer(id: r.text(0), organization: r.text(1), name: r.text(2))
        s.description = r.text(3)
        s.hostname = r.text(4)
        s.apiURL = r.text(5)
        s.tokenRef = r.text(6)
        s.region = r.text(7)
        s.environment = r.text(8)
        s.status = r.text(9)
        s.health = r.text(10)
        s.version = r.text(11)
        if case .array(let tags)? = try? JSONValue.parse(Array(r.text(12).utf8)) { s.tags = tags.compactMap(\.stringValue) }
        if case .object(let m)? = try? JSONValue.parse(Array(r.text(13).utf8)) {
            for (k, v) in m { s.metadata[k] = v.stringValue ?? "" }
        }
        s.heartbeatSeconds = r.int(14)
        s.createdAt = r.int(15)
        s.updatedAt = r.int(16)
        s.lastSeenAt = r.isNull(17) ? nil : r.int(17)
        s.lastHealthCheckAt = r.isNull(18) ? nil : r.int(18)
        return s
    }

    /// The server `nameOrID` of `organization`.
    public func server(_ organization: String, _ nameOrID: String) throws -> ManagedServer? {
        try database.prepare("SELECT \(Self.columns) FROM fleet_server WHERE organization = ? AND (name = ? OR id = ?)")
            .first([.text(organization), .text(nameOrID), .text(nameOrID)], Self.row)
    }

    /// Registers (or, for an existing name, updates) a server from a request; a new server
    /// gets `newID` (ids, like times, come from the caller).
    public func register(_ organization: String, _ request: JSONValue, now: Int64, newID: String) throws -> ManagedServer {
        let o = try StrictObject(request, allowed: ManagedServer.keys)
        guard let name = try o.string("name"), Self.validName(name) else {
            throw Failure(code: 400, description: "name is required: letters, digits, '-' and '_' (it is a subject token), not \"api\"")
        }
        var server = try self.server(organization, name) ?? ManagedServer(id: newID, organization: organization, name: name)
        if server.createdAt == 0 { server.createdAt = now }
        try server.apply(o)
        server.updatedAt = now
        try save(server)
        return server
    }

    /// Updates an existing server (`name` or `id` names it).
    public func update(_ organization: String, _ request: JSONValue, now: Int64) throws -> ManagedServer {
        let o = try StrictObject(request, allowed: ManagedServer.keys)
        guard let key = try o.string("id") ?? o.string("name"), var server = try server(organization, key) else {
            throw Failure(code: 404, description: "no such server in \(organization)")
        }
        try server.apply(o)
        server.updatedAt = now
        try save(server)
        return server
    }

    /// Removes a server and its history; returns it.
    public func deregister(_ organization: String, _ nameOrID: String) throws -> ManagedServer {
        guard let server = try server(organization, nameOrID) else { throw Failure(code: 404, description: "no server \(nameOrID) in \(organization)") }
        try database.prepare("DELETE FROM fleet_health_check WHERE server_id = ?").run([.text(server.id)])
        try database.prepare("DELETE FROM fleet_server WHERE id = ?").run([.text(server.id)])
        return server
    }

    /// Bounds of what a registration may store (a registry is not a file store).
    public static let maxDescriptionBytes = 4096, maxFieldBytes = 1024, maxTags = 64, maxMetadataEntries = 64

    /// Whether `server`'s token reference is granted to its organization now.
    public func isGranted(_ server: ManagedServer) -> Bool {
        Self.granted(server.tokenRef, apiURL: server.apiURL, organization: server.organization, grants: grants)
    }

    /// Refuses an ungranted token reference (403) and values beyond the bounds (400), naming
    /// the field and its limit.
    func validate(_ s: ManagedServer) throws {
        guard isGranted(s) else {
            let allowed = grants[s.organization] ?? []
            let what = Self.refGranted(s.tokenRef, allowed) ? "apiUrl \(s.apiURL): its host may not receive organization \(s.organization)'s tokens"
                : "tokenRef \(s.tokenRef) is not granted to organization \(s.organization)"
            throw Failure(code: 403, description: "\(what); the operator grants token references and hosts per organization in fleet.token_refs (granted: \(allowed.joined(separator: ", ")))")
        }
        if !s.tokenRef.isEmpty && Self.resolve(s.tokenRef) == nil {
            throw Failure(code: 400, description: "tokenRef \(s.tokenRef) does not resolve on the clusterd host (\(s.tokenRef.hasPrefix("env:") ? "environment variable unset" : "file missing or unreadable")): checks would go without a token")
        }
        func tooLong(_ field: String, _ value: String, _ limit: Int) throws {
            if value.utf8.count > limit { throw Failure(code: 400, description: "\(field) is \(value.utf8.count) bytes; at most \(limit) are accepted") }
        }
        try tooLong("description", s.description, Self.maxDescriptionBytes)
        for (field, value) in [("hostname", s.hostname), ("apiUrl", s.apiURL), ("tokenRef", s.tokenRef), ("region", s.region),
                               ("environment", s.environment), ("version", s.version)] {
            try tooLong(field, value, Self.maxFieldBytes)
        }
        if s.tags.count > Self.maxTags { throw Failure(code: 400, description: "\(s.tags.count) tags; at most \(Self.maxTags) are accepted") }
        for tag in s.tags { try tooLong("a tag", tag, Self.maxFieldBytes) }
        if s.metadata.count > Self.maxMetadataEntries {
            throw Failure(code: 400, description: "\(s.metadata.count) metadata entries; at most \(Self.maxMetadataEntries) are accepted")
        }
        for (key, value) in s.metadata { try tooLong("metadata \(key.prefix(40))", key + value, Self.maxFieldBytes) }
    }

    private func save(_ s: ManagedServer) throws {
        try validate(s)
        let tags = JSONValue.array(s.tags.map(JSONValue.string)).jsonText
        let metadata = JSONValue.object(s.metadata.keys.sorted().map { ($0, .string(s.metadata[$0]!)) }).jsonText
        try database.prepare("""
            INSERT INTO fleet_server (id, organization, name, description, hostname, api_url, token_ref, region, environment, status,
                health_status, version, tags, metadata, heartbeat_seconds, created_at, updated_at, last_seen_at, last_health_check_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET description = excluded.description, hostname = excluded.hostname, api_url = excluded.api_url,
                token_ref = excluded.token_ref, region = excluded.region, environment = excluded.environment, status = excluded.status,
                version = excluded.version, tags = excluded.tags, metadata = excluded.metadata, heartbeat_seconds = excluded.heartbeat_seconds,
                updated_at = excluded.updated_at
            """).run([.text(s.id), .text(s.organization), .text(s.name), .text(s.description), .text(s.hostname), .text(s.apiURL),
                      .text(s.tokenRef), .text(s.region), .text(s.environment), .text(s.status), .text(s.health), .text(s.version),
                      .text(tags), .text(metadata), .integer(s.heartbeatSeconds), .integer(s.createdAt), .integer(s.updatedAt),
                      s.lastSeenAt.map(SQLValue.integer) ?? .null, s.lastHealthCheckAt.map(SQLValue.integer) ?? .null])
    }

    /// Server names are subject tokens.
    static func validName(_ name: String) -> Bool {
        !name.isEmpty && name != "api" && name.count <= 128 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    /// Servers of `organization`, filtered.
    public func list(_ organization: String, status: String? = nil, health: String? = nil, region: String? = nil,
                     environment: String? = nil, tag: String? = nil) throws -> [ManagedServer] {
        var sql = "SELECT \(Self.columns) FROM fleet_server WHERE organization = ?"
        var values: [SQLValue] = [.text(organization)]
        for (column, value) in [("status", status), ("health_status", health), ("region", region), ("environment", environment)] {
            if let value {
                sql += " AND \(column) = ?"
                values.append(.text(value))
            }
        }
        let all = try database.prepare(sql + " ORDER BY name").rows(values, Self.row)
        return tag.map { t in all.filter { $0.tags.contains(t) } } ?? all
    }

    /// Every active server with an API URL or a heartbeat allowance, of every organization (for the poller).
    public func watched() throws -> [ManagedServer] {
        try database.prepare("SELECT \(Self.columns) FROM fleet_server WHERE status = 'active' AND (api_url <> '' OR heartbeat_seconds > 0) ORDER BY coalesce(last_health_check_at, 0)")
            .rows([], Self.row)
    }

    /// A heartbeat: the server is seen now. Returns false for an unknown server.
    @discardableResult
    public func heartbeat(_ organization: String, _ name: String, version: String?, now: Int64) throws -> Bool {
        try database.prepare("UPDATE fleet_server SET last_seen_at = ?, version = coalesce(?, version) WHERE organization = ? AND name = ?")
            .run([.integer(now), version.map(SQLValue.text) ?? .null, .text(organization), .text(name)])
        return database.changes > 0
    }

    /// Stores a check and the server's new health; returns the previous health, or `new`
    /// when the server was never judged (so its first result, whatever it is, is a change).
    @discardableResult
    public func record(_ server: ManagedServer, _ result: HealthCheckResult, at now: Int64, checked: Bool) throws -> String {
        try database.transaction {
            let previous = try database.prepare("""
                SELECT CASE WHEN last_health_check_at IS NULL AND health_status = 'unknown' THEN 'new' ELSE health_status END
                FROM fleet_server WHERE id = ?
                """).first([.text(server.id)]) { $0.text(0) } ?? "new"
            if checked {
                try database.prepare("""
                    INSERT INTO fleet_health_check (server_id, at, status, response_time_ms, http_status, database_healthy, cache_healthy,
                        services_healthy, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).run([.text(server.id), .integer(now), .text(result.status), result.responseTimeMilliseconds.map(SQLValue.integer) ?? .null,
                              result.httpStatus.map { .integer(Int64($0)) } ?? .null, Self.flag(result.databaseHealthy),
                              Self.flag(result.cacheHealthy), Self.flag(result.servicesHealthy), .text(result.error)])
            }
            try database.prepare("""
                UPDATE fleet_server SET health_status = ?, last_health_check_at = CASE WHEN ? THEN ? ELSE coalesce(last_health_check_at, 0) END,
                    last_seen_at = CASE WHEN ? = 'healthy' AND ? THEN ? ELSE last_seen_at END WHERE id = ?
                """).run([.text(result.status), .integer(checked ? 1 : 0), .integer(now), .text(result.status), .integer(checked ? 1 : 0),
                          .integer(now), .text(server.id)])
            return previous
        }
    }

    static func flag(_ b: Bool?) -> SQLValue { b.map { .integer($0 ? 1 : 0) } ?? .null }

    /// The health-check history of a server, newest first.
    public func checks(_ server: ManagedServer, limit: Int64 = 50) throws -> [JSONValue] {
        try database.prepare("""
            SELECT at, status, response_time_ms, http_status, error_message FROM fleet_health_check WHERE server_id = ? ORDER BY id DESC LIMIT ?
            """).rows([.text(server.id), .integer(limit)]) { r in
            .object([("at", .integer(r.int(0))), ("status", .string(r.text(1))), ("responseTimeMs", r.isNull(2) ? .null : .integer(r.int(2))),
                     ("httpStatus", r.isNull(3) ? .null : .integer(r.int(3))), ("error", .string(r.text(4)))])
        }
    }

    /// Counts by status, health, region and environment, as the design's fleet summary.
    public func summary(_ organization: String) throws -> JSONValue {
        let servers = try list(organization)
        func counts(_ key: (ManagedServer) -> String) -> JSONValue {
            var c: [String: Int64] = [:]
            for s in servers { c[key(s), default: 0] += 1 }
            return .object(c.keys.sorted().map { ($0, .integer(c[$0]!)) })
        }
        return .object([("organization", .string(organization)), ("totalServers", .integer(Int64(servers.count))),
                         ("byStatus", counts(\.status)), ("byHealth", counts(\.health)),
                         ("byRegion", counts { $0.region.isEmpty ? "-" : $0.region }),
                         ("byEnvironment", counts { $0.environment.isEmpty ? "-" : $0.environment })])
    }
}
