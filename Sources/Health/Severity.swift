/// A health severity. Ordered as rackscope's planner orders them, with Icinga/Kapacitor's
/// INFO between OK and UNKNOWN: OK < INFO < UNKNOWN < WARN < CRIT. Worst wins everywhere.
public enum Severity: String, Sendable, Comparable, CaseIterable, Codable {
    case ok = "OK", info = "INFO", unknown = "UNKNOWN", warn = "WARN", crit = "CRIT"

    var rank: Int {
        switch self {
        case .ok: 0
        case .info: 1
        case .unknown: 2
        case .warn: 3
        case .crit: 4
        }
    }

    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }

    /// Whether this severity raises an alert (UNKNOWN, WARN, CRIT); OK and INFO do not.
    public var isProblem: Bool { rank >= Severity.unknown.rank }

    /// Lower-case name for subjects and labels (`crit`, `warn`, ...).
    public var token: String { rawValue.lowercased() }

    /// Parses `OK`, `warn`, `Critical`... (case-insensitive; WARNING and CRITICAL accepted).
    public init?(name: String) {
        switch name.uppercased() {
        case "OK": self = .ok
        case "INFO": self = .info
        case "UNKNOWN": self = .unknown
        case "WARN", "WARNING": self = .warn
        case "CRIT", "CRITICAL": self = .crit
        default: return nil
        }
    }
}
