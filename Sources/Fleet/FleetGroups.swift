import Model
import Store

/// Server groups of an organization: static members plus dynamic criteria (a server matches
/// when it has one of the tags, and is in one of the regions and environments, each list
/// that is not empty).
extension FleetRegistry {
    /// Creates or replaces the group named in `request` (`name`, `description`, `tags`,
    /// `regions`, `environments`, `members`: server names).
    public func saveGroup(_ organization: String, _ request: JSONValue, now: Int64) throws -> JSONValue {
        let o = try StrictObject(request, allowed: ["name", "description", "tags", "regions", "environments", "members"])
        guard let name = try o.string("name"), Self.validName(name) else { throw Failure(code: 400, description: "group name is required (a subject token)") }
        func list(_ key: String) throws -> String { JSONValue.array((try o.array(key) ?? []).filter { $0.stringValue != nil }).jsonText }
        try database.prepare("""
            INSERT INTO fleet_group (organization, name, description, tags, regions, environments, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (organization, name) DO UPDATE SET description = excluded.description, tags = excluded.tags,
                regions = excluded.regions, environments = excluded.environments, updated_at = excluded.updated_at
            """).run([.text(organization), .text(name), .text(try o.string("description") ?? ""), .text(try list("tags")),
                      .text(try list("regions")), .text(try list("environments")), .integer(now), .integer(now)])
        if let members = try o.array("members") {
            let id = try groupID(organization, name)
            try database.prepare("DELETE FROM fleet_group_member WHERE group_id = ?").run([.integer(id)])
            for member in members.compactMap(\.stringValue) {
                guard let server = try server(organization, member) else { throw Failure(code: 404, description: "no server \(member) in \(organization)") }
                try database.prepare("INSERT INTO fleet_group_member (group_id, server_id, added_at) VALUES (?, ?, ?)")
                    .run([.integer(id), .text(server.id), .integer(now)])
            }
        }
        return try group(organization, name)
    }

    func groupID(_ organization: String, _ name: String) throws -> Int64 {
        guard let id = try database.prepare("SELECT id FROM fleet_group WHERE organization = ? AND name = ?")
            .first([.text(organization), .text(name)], { $0.int(0) }) else { throw Failure(code: 404, description: "no group \(name) in \(organization)") }
        return id
    }

    /// The servers of a group: its static members and every server matching its criteria.
    public func members(_ organization: String, group name: String) throws -> [ManagedServer] {
        let id = try groupID(organization, name)
        let criteria = try database.prepare("SELECT tags, regions, environments FROM fleet_group WHERE id = ?").first([.integer(id)]) { r in
            [r.text(0), r.text(1), r.text(2)].map { text -> Set<String> in
                guard case .array(let a)? = try? JSONValue.parse(Array(text.utf8)) else { return [] }
                return Set(a.compactMap(\.stringValue))
            }
        } ?? [[], [], []]
        let statics = Set(try database.prepare("SELECT server_id FROM fleet_group_member WHERE group_id = ?").rows([.integer(id)]) { $0.text(0) })
        let dynamic = !(criteria[0].isEmpty && criteria[1].isEmpty && criteria[2].isEmpty)
        return try list(organization).filter { s in
            if statics.contains(s.id) { return true }
            guard dynamic else { return false }
            return (criteria[0].isEmpty || !criteria[0].isDisjoint(with: s.tags))
                && (criteria[1].isEmpty || criteria[1].contains(s.region)) && (criteria[2].isEmpty || criteria[2].contains(s.environment))
        }
    }

    /// A group with its members and their health counts.
    public func group(_ organization: String, _ name: String) throws -> JSONValue {
        let id = try groupID(organization, name)
        let row = try database.prepare("SELECT description, tags, regions, environments FROM fleet_group WHERE id = ?").first([.integer(id)]) { r in
            (r.text(0), r.text(1), r.text(2), r.text(3))
        }!
        let members = try self.members(organization, group: name)
        var health: [String: Int64] = [:]
        for m in members { health[m.health, default: 0] += 1 }
        func parsed(_ s: String) -> JSONValue { (try? JSONValue.parse(Array(s.utf8))) ?? .array([]) }
        return .object([("name", .string(name)), ("description", .string(row.0)), ("tags", parsed(row.1)), ("regions", parsed(row.2)),
                        ("environments", parsed(row.3)), ("members", .array(members.map { .string($0.name) })),
                        ("health", .object(health.keys.sorted().map { ($0, .integer(health[$0]!)) }))])
    }

    /// Every group of an organization, with members and health.
    public func groups(_ organization: String) throws -> [JSONValue] {
        try database.prepare("SELECT name FROM fleet_group WHERE organization = ? ORDER BY name").rows([.text(organization)]) { $0.text(0) }
            .map { try group(organization, $0) }
    }

    /// Deletes a group (its servers stay).
    public func deleteGroup(_ organization: String, _ name: String) throws {
        let id = try groupID(organization, name)
        try database.prepare("DELETE FROM fleet_group_member WHERE group_id = ?").run([.integer(id)])
        try database.prepare("DELETE FROM fleet_group WHERE id = ?").run([.integer(id)])
    }
}
