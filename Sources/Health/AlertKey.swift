/// The identity of one evaluated target of one check: an alert instance.
public struct AlertKey: Sendable, Hashable, Comparable {
    /// The check id (the alert's `alertname`).
    public var check: String
    public var cluster: String
    /// Host for node and component scope, rack id for rack scope.
    public var entity: String
    /// Component id (GPU `type-id`, ...) for component scope, else empty.
    public var component: String

    /// A key.
    public init(check: String, cluster: String, entity: String, component: String = "") {
        self.check = check
        self.cluster = cluster
        self.entity = entity
        self.component = component
    }

    public static func < (a: AlertKey, b: AlertKey) -> Bool {
        (a.check, a.cluster, a.entity, a.component) < (b.check, b.cluster, b.entity, b.component)
    }
}

/// A change of what consumers should believe about an alert: it fires (or its severity or
/// flapping mark changed), or it resolved.
public struct HealthTransition: Sendable, Equatable {
    /// `firing` or `resolved`.
    public enum Status: String, Sendable { case firing, resolved }

    public var key: AlertKey
    public var scope: Check.Scope
    public var status: Status
    public var severity: Severity
    /// Where the entity sits (nil when the topology does not list it).
    public var placement: Placement?
    /// Since when it fires (epoch seconds).
    public var startsAt: Int64
    /// When it resolved (resolved only).
    public var endsAt: Int64?
    /// Flapping: state changes too often; further changes are not notified until it calms.
    public var flapping: Bool
    /// The value that decided the severity, when there is one.
    public var value: Double?
    /// The check's name and the filled-in summary.
    public var name: String
    public var summary: String
    /// When the transition happened.
    public var at: Int64
    /// Labels that replace the topology ones (alertname and severity are always set):
    /// fleet alerts carry organization, server, region and environment instead.
    public var labels: [(key: String, value: String)] = []

    public static func == (a: HealthTransition, b: HealthTransition) -> Bool {
        a.key == b.key && a.scope == b.scope && a.status == b.status && a.severity == b.severity && a.placement == b.placement
            && a.startsAt == b.startsAt && a.endsAt == b.endsAt && a.flapping == b.flapping && a.value == b.value && a.name == b.name
            && a.summary == b.summary && a.at == b.at && a.labels.elementsEqual(b.labels) { $0.key == $1.key && $0.value == $1.value }
    }

    /// A transition.
    public init(key: AlertKey, scope: Check.Scope, status: Status, severity: Severity, placement: Placement?, startsAt: Int64,
                endsAt: Int64?, flapping: Bool, value: Double?, name: String, summary: String, at: Int64) {
        self.key = key
        self.scope = scope
        self.status = status
        self.severity = severity
        self.placement = placement
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.flapping = flapping
        self.value = value
        self.name = name
        self.summary = summary
        self.at = at
    }
}

/// A firing alert recovered from storage at start.
public struct RestoredAlert: Sendable, Equatable {
    public var key: AlertKey
    public var severity: Severity
    public var startsAt: Int64
    /// The last time its problem was seen (keep_firing_for counts from here).
    public var lastProblemAt: Int64
    public var flapping: Bool

    /// A restored alert.
    public init(key: AlertKey, severity: Severity, startsAt: Int64, lastProblemAt: Int64, flapping: Bool) {
        self.key = key
        self.severity = severity
        self.startsAt = startsAt
        self.lastProblemAt = lastProblemAt
        self.flapping = flapping
    }
}
