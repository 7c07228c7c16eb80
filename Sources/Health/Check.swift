import Model

/// One check of the library (`config/checks.yaml`): what it looks at, how a value maps to a
/// severity, and how long a problem must last before it fires or after it ends.
public struct Check: Sendable, Equatable {
    /// What a check's results are keyed by.
    public enum Scope: String, Sendable, Equatable {
        /// One result per host.
        case node
        /// One result per host and component (a tag value such as each GPU's `type-id`).
        case component
        /// One result per rack.
        case rack
    }

    /// Where a check's values come from.
    public enum Source: Sendable, Equatable {
        /// Metric lines named `metric` whose tags include every `match` pair; components are
        /// told apart by `componentTag` (default `type-id`).
        case metric(name: String, match: [String: String], componentTag: String)
        /// The node's Slurm state words through `map` (rackscope's defaults unless overridden);
        /// `not_responding` is always CRIT, an unlisted word UNKNOWN.
        case slurmState(map: [String: Severity])
        /// A host that sent nothing (no metric line, no node state) for `allowance` seconds
        /// gets `severity` (default UNKNOWN).
        case silence(allowance: Int64, severity: Severity)
        /// Black-hole nodes: jobs ending in one of `states` after less than `maxRuntime`
        /// seconds, within `window` seconds; problem when at least `minFailures` such jobs
        /// from at least `minUsers` users hit the node; then `severity` (default CRIT).
        case jobExits(states: Set<String>, maxRuntime: Int64, window: Int64, minFailures: Int, minUsers: Int, severity: Severity)
    }

    /// A threshold rule: `value op threshold` gives `severity`; the worst matching rule wins,
    /// no match is OK.
    public struct Rule: Sendable, Equatable {
        public var op: String
        public var value: Double
        public var severity: Severity

        /// Whether `x` matches.
        public func matches(_ x: Double) -> Bool {
            switch op {
            case "==": x == value
            case "!=": x != value
            case ">": x > value
            case ">=": x >= value
            case "<": x < value
            case "<=": x <= value
            default: false
            }
        }
    }

    /// Icinga-style flap detection over the last `window` results.
    public struct Flapping: Sendable, Equatable {
        public var window: Int = 21
        /// Percent state change above which a target starts flapping, and below which it stops.
        public var high: Double = 30
        public var low: Double = 25
    }

    public var id: String
    public var name: String
    public var scope: Scope
    public var source: Source
    public var rules: [Rule]
    /// Seconds a problem must last before it fires (pending until then).
    public var forSeconds: Int64
    /// Seconds a firing alert is held after the problem ended.
    public var keepFiringForSeconds: Int64
    /// A target silent this long (after its first value, or after clusterd started) is UNKNOWN; nil: never.
    public var freshnessSeconds: Int64?
    /// Component roll-up: at least this many CRIT components make the node CRIT, fewer WARN.
    public var componentCritThreshold: Int
    public var flapping: Flapping?
    /// Annotation summary; `{host}`, `{component}`, `{value}`, `{severity}` are filled in.
    public var summary: String
    /// The metric is a counter (`ib_recv`, an energy counter): the rules see its per-second
    /// rate between a series' consecutive samples, as Prometheus' `rate()` counts — a value
    /// below the previous one is a reset (the counter restarted from 0: the increase is the
    /// new value), a gap gives the average over the gap, the first sample of a series and an
    /// older or same-time sample give no value.
    public var rate = false

    /// The per-second rate from `previous` to (`time`, `value`) under ``rate``'s rules; nil
    /// when there is none.
    public static func rate(from previous: (time: Int64, value: Double)?, to time: Int64, _ value: Double) -> Double? {
        guard let previous, time > previous.time else { return nil }
        return counterIncrease(from: previous.value, to: value) / Double(time - previous.time)
    }

    /// The rackscope default Slurm state → severity map.
    public static let defaultSlurmMap: [String: Severity] = {
        var m: [String: Severity] = [:]
        for s in ["idle", "allocated", "completing"] { m[s] = .ok }
        for s in ["mixed", "maint", "planned", "reserved", "blocked", "power_down", "power_up", "powering_up", "powered_down",
                  "reboot_issued", "reboot_requested"] { m[s] = .warn }
        for s in ["down", "drain", "drained", "draining", "fail", "failing", "error", "unknown", "not_responding", "inval"] { m[s] = .crit }
        return m
    }()

    /// The severity of a metric value by the rules.
    public func severity(of value: Double) -> Severity {
        var worst = Severity.ok
        for rule in rules where rule.matches(value) { worst = max(worst, rule.severity) }
        return worst
    }
}
