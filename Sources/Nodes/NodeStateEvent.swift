import LineProtocol
import Model

/// One node of a `nodestate` event (cc-backend's `UpdateNodeStatesRequest.nodes[]`).
public struct NodeReport: Sendable, Equatable {
    /// Short host name.
    public var hostname: String
    /// Slurm's state words as sent.
    public var states: [String]
    /// Allocated CPUs, memory (MB), GPUs; running jobs.
    public var cpusAllocated: Int64
    public var memoryAllocated: Int64
    public var gpusAllocated: Int64
    public var jobsRunning: Int64

    /// The state cc-backend stores, reduced from the normalised words: sinfo's short forms
    /// and suffixes (`alloc$`, `mix*`, `idle~`) count as what they stand for (cc-backend's
    /// whole-word match left them `unknown`).
    public var schedulerState: SchedulerState { .reduce(slurm.flags) }
    /// Every Slurm flag, normalised.
    public var slurm: SlurmState { SlurmState(states) }

    /// A report.
    public init(hostname: String, states: [String], cpusAllocated: Int64 = 0, memoryAllocated: Int64 = 0,
                gpusAllocated: Int64 = 0, jobsRunning: Int64 = 0) {
        self.hostname = hostname
        self.states = states
        self.cpusAllocated = cpusAllocated
        self.memoryAllocated = memoryAllocated
        self.gpusAllocated = gpusAllocated
        self.jobsRunning = jobsRunning
    }
}

/// A decoded `nodestate` line: the cluster and each node entry, decoded or refused on its own
/// (cc-backend refuses the whole batch for one bad entry; clusterd applies the rest).
public struct NodeStateEvent: Sendable {
    /// The cluster every entry belongs to.
    public var cluster: String
    /// Entries in input order.
    public var nodes: [Result<NodeReport, NodeRejection>]
    /// Each entry as it arrived (a refused entry's dead letter quotes its entry, not the line).
    public var entries: [JSONValue]

    static let nodeKeys = ["hostname", "states", "cpusAllocated", "memoryAllocated", "gpusAllocated", "jobsRunning"]

    /// Decodes one line: measurement `nodestate` (tags ignored), string field `event` with
    /// `{"cluster", "nodes": [...]}`. Also returns the column of the `event` field.
    public static func decode(_ view: PointView) -> Result<(event: NodeStateEvent, column: Int), Located<NodeRejection>> {
        guard view.measurement.equals("nodestate") else {
            return .failure(Located(column: 1, .notAnEvent("measurement is \"\(view.measurement.string)\", expected \"nodestate\"")))
        }
        switch EventLine.json(view) {
        case .failure(let located):
            switch located.value {
            case .notAnEvent(let m): return .failure(Located(column: located.column, .notAnEvent(m)))
            case .invalidJSON(let m): return .failure(Located(column: located.column, .invalidJSON(m)))
            }
        case .success(let (json, column)):
            do {
                return .success((try NodeStateEvent(json: json), column))
            } catch {
                return .failure(Located(column: column, error))
            }
        }
    }

    /// Decodes the event JSON. Errors of the envelope (cluster, nodes) refuse the line; errors
    /// inside an entry refuse only that entry.
    public init(json: JSONValue) throws(NodeRejection) {
        let top: StrictObject
        do {
            top = try StrictObject(json, allowed: ["cluster", "nodes"])
            cluster = try top.name("cluster") ?? ""
        } catch { throw .from(error) }
        guard !cluster.isEmpty else { throw .badField(path: "cluster", reason: "is required", code: "missing_field") }
        let entries: [JSONValue]
        do { entries = try top.array("nodes") ?? [] } catch { throw .from(error) }
        guard !entries.isEmpty else { throw .badField(path: "nodes", reason: "is required and must not be empty", code: "missing_field") }
        self.entries = entries
        nodes = entries.enumerated().map { i, entry in Self.report(entry, path: "nodes[\(i)]") }
    }

    static func report(_ json: JSONValue, path: String) -> Result<NodeReport, NodeRejection> {
        do {
            let o = try StrictObject(json, allowed: nodeKeys, path: path)
            guard let hostname = try o.name("hostname"), !hostname.isEmpty else {
                return .failure(.badField(path: o.path(of: "hostname"), reason: "is required", code: "missing_field"))
            }
            var states: [String] = []
            for (j, s) in (try o.array("states") ?? []).enumerated() {
                guard case .string(let word) = s else {
                    return .failure(.badField(path: "\(o.path(of: "states"))[\(j)]", reason: "expected a string, found \(s.typeName)", code: "wrong_type"))
                }
                states.append(word)
            }
            var counts: [Int64] = []
            for key in ["cpusAllocated", "memoryAllocated", "gpusAllocated", "jobsRunning"] {
                let n = try o.int(key) ?? 0
                if n < 0 { return .failure(.invalidValue("\(o.path(of: key)) (\(hostname)): \(n) is negative")) }
                counts.append(n)
            }
            return .success(NodeReport(hostname: hostname, states: states, cpusAllocated: counts[0], memoryAllocated: counts[1],
                                       gpusAllocated: counts[2], jobsRunning: counts[3]))
        } catch {
            return .failure(.from(error))
        }
    }
}
