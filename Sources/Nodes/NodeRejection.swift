import Model

/// Why a node-state line, or one node entry of it, was refused. `code` is stable (counters,
/// dead-letter queries); the description tells the operator what to fix.
public enum NodeRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// The line is not `nodestate event="{json}"`.
    case notAnEvent(String)
    /// The event's JSON does not parse.
    case invalidJSON(String)
    /// A member is unknown, of the wrong type, out of range or missing.
    case badField(path: String, reason: String, code: String)
    /// A value outside its domain (negative count, empty hostname).
    case invalidValue(String)
    /// The cluster has no cluster.json.
    case unknownCluster(String)
    /// No subcluster of the cluster lists the host.
    case unknownHost(String)
    /// A line-protocol syntax error.
    case syntax(String)

    /// Stable machine-readable code.
    public var code: String {
        switch self {
        case .notAnEvent: "not_an_event"
        case .invalidJSON: "invalid_json"
        case .badField(_, _, let code): code
        case .invalidValue: "invalid_value"
        case .unknownCluster: "unknown_cluster"
        case .unknownHost: "unknown_host"
        case .syntax: "syntax"
        }
    }

    public var description: String {
        switch self {
        case .notAnEvent(let m), .invalidJSON(let m), .invalidValue(let m), .unknownCluster(let m), .unknownHost(let m), .syntax(let m): m
        case .badField(let path, let reason, _): "\(path): \(reason)"
        }
    }

    static func from(_ error: JSONFieldError) -> NodeRejection { .badField(path: error.path, reason: error.reason, code: error.code) }
}
