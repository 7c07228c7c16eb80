import Health

/// A maintenance window (a silence scoped to the topology): alerts of entities inside it are
/// recorded but marked silenced and not published as firing.
public struct MaintenanceWindow: Sendable, Equatable {
    /// What a window covers: a site, room or rack covers everything below it.
    public enum Scope: String, Sendable, CaseIterable { case site, room, rack, node }

    public var id: Int64
    public var scope: Scope
    public var target: String
    public var reason: String
    public var createdBy: String
    public var createdAt: Int64
    /// Epoch seconds; `endsAt` nil means until ended by hand.
    public var startsAt: Int64
    public var endsAt: Int64?
    /// When it was ended by hand.
    public var endedAt: Int64?

    /// A window.
    public init(id: Int64 = 0, scope: Scope, target: String, reason: String, createdBy: String, createdAt: Int64, startsAt: Int64,
                endsAt: Int64? = nil, endedAt: Int64? = nil) {
        self.id = id
        self.scope = scope
        self.target = target
        self.reason = reason
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.endedAt = endedAt
    }

    /// Whether it is in force at `now`.
    public func isActive(at now: Int64) -> Bool {
        startsAt <= now && (endsAt.map { now < $0 } ?? true) && (endedAt.map { now < $0 } ?? true)
    }

    /// `active`, `scheduled` or `expired` at `now` (rackscope's statuses).
    public func status(at now: Int64) -> String {
        isActive(at: now) ? "active" : startsAt > now && endedAt == nil ? "scheduled" : "expired"
    }

    /// Whether it covers an entity with this host name (or rack id) and placement.
    public func covers(entity: String, placement: Placement?) -> Bool {
        switch scope {
        case .node: return entity == target
        case .rack: return placement?.rack == target || entity == target
        case .room: return placement?.room == target
        case .site: return placement?.site == target
        }
    }
}
