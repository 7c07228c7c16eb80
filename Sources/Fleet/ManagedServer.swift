import Model

/// A registered server (the design's `managed_servers` row).
public struct ManagedServer: Sendable, Equatable {
    public var id: String
    public var organization: String
    public var name: String
    public var description: String = ""
    public var hostname: String = ""
    /// Base URL of its health API; empty: heartbeats only.
    public var apiURL: String = ""
    /// Where its bearer token lives: `env:NAME` or `file:/path` (never the token).
    public var tokenRef: String = ""
    public var region: String = ""
    public var environment: String = ""
    /// active, inactive or maintenance (only active servers are checked).
    public var status: String = "active"
    /// healthy, degraded, critical, unreachable or unknown.
    public var health: String = "unknown"
    public var version: String = ""
    public var tags: [String] = []
    public var metadata: [String: String] = [:]
    /// A server silent longer than this (seconds) is unreachable; 0: heartbeats not expected.
    public var heartbeatSeconds: Int64 = 0
    public var createdAt: Int64 = 0
    public var updatedAt: Int64 = 0
    public var lastSeenAt: Int64?
    public var lastHealthCheckAt: Int64?

    /// A server.
    public init(id: String, organization: String, name: String) {
        self.id = id
        self.organization = organization
        self.name = name
    }

    /// The JSON of the API (the token reference is shown, the token never exists here).
    public var json: JSONValue {
        var b = JSONObjectBuilder()
        b.add("id", id)
        b.add("organization", organization)
        b.add("name", name)
        b.add("description", description)
        b.add("hostname", hostname)
        b.add("apiUrl", apiURL)
        b.add("tokenRef", tokenRef)
        b.add("region", region)
        b.add("environment", environment)
        b.add("status", status)
        b.add("health", health)
        b.add("version", version)
        b.add("tags", .array(tags.map(JSONValue.string)))
        b.add("metadata", .object(metadata.keys.sorted().map { ($0, .string(metadata[$0]!)) }))
        b.add("heartbeatSeconds", heartbeatSeconds)
        b.add("createdAt", createdAt)
        b.add("updatedAt", updatedAt)
        b.add("lastSeenAt", lastSeenAt.map(JSONValue.integer) ?? .null)
        b.add("lastHealthCheckAt", lastHealthCheckAt.map(JSONValue.integer) ?? .null)
        return b.value
    }

    static let statuses: Set<String> = ["active", "inactive", "maintenance"]

    /// Applies the members of a register/update request (unknown keys refused).
    mutating func apply(_ o: StrictObject) throws {
        if let v = try o.string("description") { description = v }
        if let v = try o.string("hostname") { hostname = v }
        if let v = try o.string("apiUrl") {
            guard v.isEmpty || v.hasPrefix("http://") || v.hasPrefix("https://") else {
                throw JSONFieldError(path: "apiUrl", reason: "must start with http:// or https://", code: "invalid_value")
            }
            apiURL = v
        }
        if let v = try o.string("tokenRef") {
            guard v.isEmpty || v.hasPrefix("env:") || v.hasPrefix("file:") else {
                throw JSONFieldError(path: "tokenRef", reason: "must be env:NAME or file:/path (the token itself is never sent to clusterd)",
                                     code: "invalid_value")
            }
            tokenRef = v
        }
        if let v = try o.string("region") { region = v }
        if let v = try o.string("environment") { environment = v }
        if let v = try o.string("status") {
            guard Self.statuses.contains(v) else { throw JSONFieldError(path: "status", reason: "must be active, inactive or maintenance", code: "invalid_value") }
            status = v
        }
        if let v = try o.string("version") { version = v }
        if let v = try o.array("tags") { tags = v.compactMap(\.stringValue) }
        if let v = try o.stringMap("metadata") { metadata = v }
        if let v = try o.int("heartbeatSeconds", 0...86_400 * 7) { heartbeatSeconds = v }
    }

    /// Keys a register or update request may carry.
    static let keys = ["id", "name", "description", "hostname", "apiUrl", "tokenRef", "region", "environment", "status", "version",
                       "tags", "metadata", "heartbeatSeconds"]
}
