import Model

/// Why a job event was refused. Every case has a stable `code` (counters, dead-letter
/// queries) and a message that tells the operator what to fix.
public enum JobRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// The line is not `job,function=start_job|stop_job event="{json}"`.
    case notAnEvent(String)
    /// The `function` tag is missing or unknown.
    case badFunction(String)
    /// The event's JSON does not parse.
    case invalidJSON(String)
    /// A JSON member is unknown, of the wrong type, out of range or missing.
    case badField(path: String, reason: String, code: String)
    /// A field holds a value outside its domain (state, shared mode, ...).
    case invalidValue(String)
    /// The cluster has no cluster.json in the archive.
    case unknownCluster(String)
    /// No subcluster could be assigned.
    case noSubCluster(String)
    /// A cc-backend sanity check failed (user, numNodes, resources, counts).
    case sanity(String)
    /// The 24-hour rule: a job with this id already exists on the cluster.
    case duplicateJob(String)
    /// The same identity arrived with a different payload.
    case conflict(String)
    /// The stop's job is not running any more (stopped with different data).
    case notRunning(String)
    /// stopTime < startTime.
    case stopBeforeStart(String)
    /// A held stop found no start within the configured time.
    case heldStopExpired(String)
    /// A line-protocol syntax error.
    case syntax(String)

    /// Stable machine-readable code.
    public var code: String {
        switch self {
        case .notAnEvent: "not_an_event"
        case .badFunction: "bad_function"
        case .invalidJSON: "invalid_json"
        case .badField(_, _, let code): code
        case .invalidValue: "invalid_value"
        case .unknownCluster: "unknown_cluster"
        case .noSubCluster: "no_subcluster"
        case .sanity: "sanity_check"
        case .duplicateJob: "duplicate_job"
        case .conflict: "conflict"
        case .notRunning: "not_running"
        case .stopBeforeStart: "stop_before_start"
        case .heldStopExpired: "held_stop_expired"
        case .syntax: "syntax"
        }
    }

    public var description: String {
        switch self {
        case .notAnEvent(let m), .badFunction(let m), .invalidJSON(let m), .invalidValue(let m), .unknownCluster(let m),
             .noSubCluster(let m), .sanity(let m), .duplicateJob(let m), .conflict(let m), .notRunning(let m),
             .stopBeforeStart(let m), .heldStopExpired(let m), .syntax(let m):
            m
        case .badField(let path, let reason, _): "\(path): \(reason)"
        }
    }
}

extension JobRejection {
    /// Runs a JSON decoding step and turns what it throws into a rejection: a refused member
    /// keeps its path and code, a rejection stays as it is, anything else is invalid JSON.
    static func decoding<T>(_ body: () throws -> T) throws(JobRejection) -> T {
        do {
            return try body()
        } catch let e as JSONFieldError {
            throw .badField(path: e.path, reason: e.reason, code: e.code)
        } catch let e as JobRejection {
            throw e
        } catch {
            throw .invalidJSON("\(error)")
        }
    }
}
