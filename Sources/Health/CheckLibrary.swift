import Foundation
import Yams

/// The checks library (`config/checks.yaml`), validated with file:line errors.
public struct CheckLibrary: Sendable {
    /// Checks in file order.
    public let checks: [Check]

    /// Why a checks file cannot be used.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// A library of `checks`.
    public init(_ checks: [Check]) { self.checks = checks }

    /// Metric names some check looks at.
    public var metricNames: Set<String> {
        Set(checks.compactMap { check -> String? in
            if case .metric(let name, _, _) = check.source { return name }
            return nil
        })
    }

    /// Loads `path`.
    public init(contentsOf path: String) throws(LoadError) {
        guard let data = FileManager.default.contents(atPath: path) else { throw LoadError(description: "\(path): cannot read the file") }
        try self.init(yaml: String(decoding: data, as: UTF8.self), file: path)
    }

    static let checkKeys: Set<String> = ["id", "name", "scope", "source", "rules", "for", "keep_firing_for", "freshness",
                                         "component_crit_threshold", "flapping", "summary", "severity"]

    /// Parses checks YAML: `defaults` (for, keep_firing_for, freshness, flapping) and `checks`.
    public init(yaml: String, file: String) throws(LoadError) {
        func fail(_ node: Node?, _ reason: String) -> LoadError { LoadError(description: "\(file):\(node?.mark?.line ?? 0): \(reason)") }
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch { throw LoadError(description: "\(file): \(error)") }
        guard let root, let list = root["checks"]?.sequence else { throw fail(root, "expected a top-level \"checks\" list") }
        let defaults = root["defaults"]
        var checks: [Check] = []
        var seen = Set<String>()
        for node in list {
            guard case .mapping(let map) = node else { throw fail(node, "a check must be a mapping") }
            for key in map.keys where !Self.checkKeys.contains(key.string ?? "") {
                throw fail(key, "unknown key \"\(key.string ?? "")\" (allowed: \(Self.checkKeys.sorted().joined(separator: ", ")))")
            }
            guard let id = node["id"]?.string, !id.isEmpty else { throw fail(node, "check without id") }
            guard seen.insert(id).inserted else { throw fail(node, "check id \"\(id)\" is used twice") }
            func setting(_ key: String) -> Node? { node[key] ?? defaults?[key] }
            func duration(_ key: String) throws(LoadError) -> Int64? {
                guard let n = setting(key) else { return nil }
                guard let s = n.string, let d = Self.seconds(s) else { throw fail(n, "check \(id): \(key) \"\(n.string ?? "")\" is not a duration like 90s, 5m, 1h") }
                return d
            }
            guard let scope = Check.Scope(rawValue: node["scope"]?.string ?? "node") else {
                throw fail(node["scope"], "check \(id): scope must be node, component or rack")
            }
            let severityNode = node["severity"]
            var fixed: Severity?
            if let s = severityNode?.string {
                guard let sev = Severity(name: s) else { throw fail(severityNode, "check \(id): unknown severity \"\(s)\"") }
                fixed = sev
            }
            let source = try Self.source(node["source"], check: id, fixedSeverity: fixed, fail: fail)
            var rules: [Check.Rule] = []
            for r in node["rules"]?.sequence ?? [] {
                guard let op = r["op"]?.string, ["==", "!=", ">", ">=", "<", "<="].contains(op) else { throw fail(r, "check \(id): rule op must be == != > >= < <=") }
                guard let v = r["value"]?.string.flatMap(Double.init) else { throw fail(r, "check \(id): rule value must be a number") }
                guard let s = r["severity"]?.string, let sev = Severity(name: s) else { throw fail(r, "check \(id): rule severity must be OK, INFO, WARN, CRIT or UNKNOWN") }
                rules.append(Check.Rule(op: op, value: v, severity: sev))
            }
            if case .metric = source, rules.isEmpty { throw fail(node, "check \(id): a metric check needs rules") }
            let rateNode = node["source"]?["metric"]?["rate"]
            guard rateNode == nil || rateNode?.bool != nil else { throw fail(rateNode, "check \(id): rate must be true or false") }
            if case .silence = source {} else if case .jobExits = source {} else if fixed != nil {
                throw fail(severityNode, "check \(id): severity applies to silence and job_exits sources only (use rules)")
            }
            if scope == .component, case .metric = source {} else if scope == .component {
                throw fail(node, "check \(id): component scope needs a metric source")
            }
            var flapping: Check.Flapping?
            if let f = setting("flapping") {
                if f.bool == true { flapping = Check.Flapping() } else if case .mapping = f {
                    var spec = Check.Flapping()
                    if let w = f["window"]?.int { spec.window = max(2, w) }
                    if let h = f["high"]?.float { spec.high = h }
                    if let l = f["low"]?.float { spec.low = l }
                    guard spec.low <= spec.high else { throw fail(f, "check \(id): flapping low must not exceed high") }
                    flapping = spec
                }
            }
            checks.append(Check(
                id: id, name: node["name"]?.string ?? id, scope: scope, source: source, rules: rules,
                forSeconds: try duration("for") ?? 0, keepFiringForSeconds: try duration("keep_firing_for") ?? 0,
                freshnessSeconds: try duration("freshness"), componentCritThreshold: node["component_crit_threshold"]?.int ?? 1,
                flapping: flapping, summary: node["summary"]?.string ?? "\(node["name"]?.string ?? id) is {severity} on {host}",
                rate: rateNode?.bool ?? false))
        }
        self.checks = checks
    }

    static func source(_ node: Node?, check id: String, fixedSeverity: Severity?, fail: (Node?, String) -> LoadError) throws(LoadError) -> Check.Source {
        guard let node, case .mapping(let map) = node, map.count == 1, let kind = map.keys.first?.string, let spec = map.values.first else {
            throw fail(node, "check \(id): source must be one of {metric: ...}, {slurm_state: ...}, {silence: ...}, {job_exits: ...}")
        }
        switch kind {
        case "metric":
            if let name = spec.string { return .metric(name: name, match: [:], componentTag: "type-id") }
            guard let name = spec["name"]?.string else { throw fail(spec, "check \(id): metric source needs a name") }
            var match: [String: String] = [:]
            if case .mapping(let m)? = spec["match"] { for (k, v) in m { match[k.string ?? ""] = v.string ?? "" } }
            return .metric(name: name, match: match, componentTag: spec["component_tag"]?.string ?? "type-id")
        case "slurm_state":
            var map = Check.defaultSlurmMap
            if case .mapping(let overrides) = spec {
                for (k, v) in overrides {
                    guard let word = k.string, let s = v.string, let sev = Severity(name: s) else { throw fail(k, "check \(id): slurm_state maps a state word to a severity") }
                    map[word.lowercased()] = sev
                }
            }
            return .slurmState(map: map)
        case "silence":
            guard let s = spec.string, let d = seconds(s) else { throw fail(spec, "check \(id): silence needs a duration") }
            return .silence(allowance: d, severity: fixedSeverity ?? .unknown)
        case "job_exits":
            func d(_ key: String, _ def: Int64) throws(LoadError) -> Int64 {
                guard let n = spec[key] else { return def }
                guard let s = n.string, let v = seconds(s) else { throw fail(n, "check \(id): \(key) must be a duration") }
                return v
            }
            let states = Set((spec["states"]?.sequence ?? []).compactMap(\.string))
            return .jobExits(states: states.isEmpty ? ["failed", "node_fail"] : states, maxRuntime: try d("max_runtime", 300),
                             window: try d("window", 3600), minFailures: spec["min_failures"]?.int ?? 5, minUsers: spec["min_users"]?.int ?? 2,
                             severity: fixedSeverity ?? .crit)
        default:
            throw fail(node, "check \(id): unknown source \"\(kind)\"")
        }
    }

    /// `90s`, `5m`, `1h`, `2d`, `1w`, `1y` or plain seconds.
    public static func seconds(_ text: String) -> Int64? {
        if let n = Int64(text) { return n }
        guard let unit = text.last, let n = Int64(text.dropLast()) else { return nil }
        switch unit {
        case "s": return n
        case "m": return n * 60
        case "h": return n * 3600
        case "d": return n * 86_400
        case "w": return n * 604_800
        case "y": return n * 31_536_000
        default: return nil
        }
    }
}
