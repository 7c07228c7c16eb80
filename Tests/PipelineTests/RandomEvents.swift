import BusTestSupport
import Foundation
import Model

/// Random job and node-state events for issue 16's loops: mostly well-formed, with field
/// values drawn from the edges (extreme integers, negative and far times, long and odd
/// strings, unknown clusters and hosts), sometimes cut or with a byte changed. Seeded, so a
/// failure names the seed that reproduces it.
struct RandomEvents {
    var rng: SplitMix64
    let now: Int64

    init(seed: UInt64, now: Int64) {
        rng = SplitMix64(state: seed)
        self.now = now
    }

    mutating func chance(_ percent: UInt64) -> Bool { rng.next() % 100 < percent }
    mutating func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }

    mutating func integer() -> Int64 {
        switch rng.next() % 6 {
        case 0: return pick([Int64.min, Int64.max, -1, 0, 1, Int64(Int32.max), Int64(Int32.max) + 1, Int64(Int32.min) - 1])
        case 1: return Int64(bitPattern: rng.next())
        default: return Int64(rng.next() % 5000)
        }
    }

    mutating func time() -> Int64 {
        switch rng.next() % 8 {
        case 0: return integer()
        case 1: return now * 1000                              // milliseconds
        case 2: return now + Int64(rng.next() % (10 * 86_400))  // up to ten days ahead
        case 3: return 915_148_800                             // 1999
        default: return now - Int64(rng.next() % (2 * 86_400))
        }
    }

    mutating func string() -> String {
        switch rng.next() % 6 {
        case 0: return ""
        case 1: return String(repeating: pick(["a", "\"", "\\", "é", "😀", " ", ",", "="]), count: Int(rng.next() % 5000))
        case 2: return String((0..<Int(rng.next() % 40)).map { _ in Character(Unicode.Scalar(UInt8(32 + rng.next() % 95))) })
        default: return pick(["u", "alice", "bob", "p", "proj1"])
        }
    }

    mutating func host() -> String {
        chance(85) ? String(format: "f0%03d", 101 + Int(rng.next() % 80)) : pick(["x9999", "", "a0603", "f0101 ", string()])
    }

    mutating func cluster() -> String { chance(85) ? "fritz" : pick(["alex", "emmy", "", "FRITZ", string()]) }

    mutating func jobId() -> Int64 { chance(80) ? Int64(1 + rng.next() % 400) : integer() }

    /// A start_job event's JSON.
    mutating func start() -> JSONValue {
        var b = JSONObjectBuilder()
        b.add("jobId", jobId())
        b.add("cluster", cluster())
        if chance(90) { b.add("user", string()) }
        if chance(50) { b.add("project", string()) }
        let hosts = (0..<Int(1 + rng.next() % 3)).map { _ in host() }
        b.add("numNodes", chance(90) ? Int64(hosts.count) : integer())
        b.add("resources", .array(hosts.map { h in
            var r = JSONObjectBuilder()
            r.add("hostname", h)
            if chance(20) { r.add("hwthreads", .array((0..<Int(rng.next() % 8)).map { _ in .integer(integer()) })) }
            return r.value
        }))
        b.add("startTime", time())
        if chance(20) { b.add("submitTime", time()) }
        if chance(20) { b.add("walltime", integer()) }
        if chance(10) { b.add("shared", pick(["none", "single_user", "multi_user", "sometimes"])) }
        if chance(10) { b.add("exclusive", integer()) }
        if chance(10) { b.add("monitoringStatus", integer()) }
        if chance(10) { b.add("metaData", .object([("jobScript", .string(string())), (string(), .string(string()))])) }
        if chance(10) { b.add("tags", .array([.object([("type", .string(string())), ("name", .string(string()))])])) }
        if chance(5) { b.add(string(), integer()) }
        if chance(5) { b.add("energy", .double(pick([Double.greatestFiniteMagnitude, -0.0, 1e308, 5]))) }
        return b.value
    }

    /// A stop_job event's JSON.
    mutating func stop() -> JSONValue {
        var b = JSONObjectBuilder()
        b.add("jobId", jobId())
        if chance(80) { b.add("cluster", cluster()) }
        b.add("stopTime", time())
        if chance(50) { b.add("jobState", pick(["completed", "failed", "cancelled", "timeout", "out_of_memory", "running", "exploded", ""])) }
        if chance(10) { b.add("startTime", time()) }
        return b.value
    }

    /// A node-state event's JSON.
    mutating func nodeState() -> JSONValue {
        var b = JSONObjectBuilder()
        b.add("cluster", cluster())
        b.add("nodes", .array((0..<Int(rng.next() % 4)).map { _ in
            var n = JSONObjectBuilder()
            n.add("hostname", host())
            n.add("states", .array((0..<Int(rng.next() % 3)).map { _ in .string(pick(["IDLE", "allocated", "DRAIN", "down", "mixed", "weird", string()])) }))
            if chance(40) { n.add("cpusAllocated", integer()) }
            if chance(20) { n.add("memoryAllocated", integer()) }
            if chance(10) { n.add("gpusAllocated", integer()) }
            if chance(10) { n.add("jobsRunning", integer()) }
            if chance(5) { n.add(string(), 1) }
            return n.value
        }))
        return b.value
    }

    /// One random message: its subject and bytes.
    mutating func message() -> (subject: String, body: [UInt8]) {
        let (subject, head, json): (String, String, JSONValue)
        switch rng.next() % 5 {
        case 0, 1: (subject, head, json) = ("cc.job.event", "job,function=start_job", start())
        case 2, 3: (subject, head, json) = ("cc.job.event", "job,function=stop_job", stop())
        default: (subject, head, json) = ("cc.node.state", "nodestate", nodeState())
        }
        let escaped = json.jsonText.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        var body = Array("\(head) event=\"\(escaped)\"".utf8)
        if chance(20) { body += Array(" \(integer())".utf8) }
        if chance(5), !body.isEmpty { body = Array(body.prefix(Int(rng.next() % UInt64(body.count)))) }
        if chance(5), !body.isEmpty { body[Int(rng.next() % UInt64(body.count))] = UInt8(truncatingIfNeeded: rng.next()) }
        if chance(3) { body += [0x0A] + body }
        return (subject, body)
    }
}
