import Model

/// One node as `sinfo --json` reports it, turned into an entry of cc-backend's nodestate
/// event (`{"hostname", "states", "cpusAllocated", "memoryAllocated", "gpusAllocated",
/// "jobsRunning"}`), the same shape cc-slurm-adapter sends to cc-backend's REST API.
public struct SlurmNode: Sendable, Equatable {
    public var hostname: String
    /// Base state and flags, e.g. ["IDLE", "DRAIN"].
    public var states: [String]
    public var cpusAllocated: Int64
    /// MB.
    public var memoryAllocated: Int64
    public var gpusAllocated: Int64
    public var reason: String?

    /// A node from one element of `sinfo --json`'s `nodes`.
    public init(json: JSONValue) throws(SlurmOutputError) {
        guard let name = json["name"]?.slurmText ?? json["hostname"]?.slurmText else { throw SlurmOutputError("sinfo --json", "a node without a name") }
        hostname = name
        var words = json["state"]?.slurmWords ?? []
        for flag in json["state_flags"]?.slurmWords ?? [] where !words.contains(flag) { words.append(flag) }
        states = words.isEmpty ? ["UNKNOWN"] : words
        cpusAllocated = json["alloc_cpus"]?.slurmInteger ?? 0
        memoryAllocated = json["alloc_memory"]?.slurmInteger ?? 0
        gpusAllocated = Self.gpus(in: json["gres_used"]?.stringValue ?? "")
        reason = json["reason"]?.slurmText
    }

    /// GPUs in use from a GRES string such as `gpu:a100:4(IDX:0-3),tmpfs:0`.
    static func gpus(in gres: String) -> Int64 {
        var total: Int64 = 0
        for item in gres.split(separator: ",") where item.hasPrefix("gpu") {
            let count = item.split(separator: "(").first?.split(separator: ":").last.flatMap { Int64($0) } ?? 0
            total += count
        }
        return total
    }

    /// The entry of cc-backend's nodestate `nodes` array.
    public var entry: JSONValue {
        var b = JSONObjectBuilder()
        b.add("hostname", hostname)
        b.add("states", .array(states.map { .string($0) }))
        b.add("cpusAllocated", cpusAllocated)
        b.add("memoryAllocated", memoryAllocated)
        b.add("gpusAllocated", gpusAllocated)
        b.add("jobsRunning", Int64(0))  // sinfo does not say; cc-slurm-adapter sends 0 as well
        return b.value
    }

    /// Every node of `sinfo --json` output, one entry per node (sinfo repeats a node per
    /// partition; the first is kept).
    public static func list(_ output: [UInt8]) throws(SlurmOutputError) -> [SlurmNode] {
        let json: JSONValue
        do { json = try JSONValue.parse(output) } catch { throw SlurmOutputError("sinfo --json", "not JSON: \(error)") }
        guard case .array(let nodes)? = json["nodes"] else { throw SlurmOutputError("sinfo --json", "no \"nodes\" array") }
        var seen = Set<String>()
        var result: [SlurmNode] = []
        for node in nodes {
            let n = try SlurmNode(json: node)
            if seen.insert(n.hostname).inserted { result.append(n) }
        }
        return result
    }

    /// cc-backend's nodestate payload for `cluster`.
    public static func event(cluster: String, nodes: [SlurmNode]) -> JSONValue {
        .object([("cluster", .string(cluster)), ("nodes", .array(nodes.map(\.entry)))])
    }
}
