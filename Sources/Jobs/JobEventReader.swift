import Model

/// Reads the usual job event straight into its type, without the JSON value tree the strict
/// decoder builds and then walks (a fifth of the job intake's time went into that tree).
/// It takes only the plain shape — exact key spellings, each key once, the types cc-backend
/// sends — and returns nil for anything else, which then goes the full way
/// (``JobStart/init(json:)``, ``JobStop/init(json:)``): those decide every other case and
/// word its error. For what it does accept it returns exactly what they return
/// (`JobEventReaderTests` compares both on every shape).
enum JobEventReader {
    /// The keys of a start (exact spellings), each a bit of the seen-set.
    private enum StartKey: Int, CaseIterable {
        case jobId, cluster, subCluster, partition, project, user, shared, jobState, resources, numNodes, numHwthreads, numAcc,
             smt, startTime, submitTime, walltime, duration, arrayJobId, monitoringStatus, metaData, tags, energy, footprint,
             requestedMemory, energyFootprint, statistics, concurrentJobs, id
    }
    /// Looked up once per member, then dispatched by number (a `switch` over strings compares
    /// them one after the other).
    private static let startKeys: [String: StartKey] = Dictionary(uniqueKeysWithValues: StartKey.allCases.map { ("\($0)", $0) })

    /// A start in the plain shape, nil for anything else.
    static func start(_ bytes: UnsafeBufferPointer<UInt8>) -> JobStart? {
        var p = JSONParser(bytes: bytes)
        var start = JobStart(jobId: 0, cluster: "")
        var seen: UInt64 = 0
        do {
            let complete = try members(&p) { key, p throws(JSONParseError) -> Bool in
                guard let known = startKeys[key], seen & (1 << known.rawValue) == 0 else { return false }
                seen |= 1 << known.rawValue
                if try null(&p) { return known != .jobId }  // null is absence; a start without jobId goes the full way
                switch known {
                case .jobId: guard let v = try int(&p, JobStart.jobIds) else { return false }; start.jobId = v
                case .cluster: guard let v = try name(&p) else { return false }; start.cluster = v
                case .subCluster: guard let v = try name(&p) else { return false }; start.subCluster = v
                case .partition: guard let v = try name(&p) else { return false }; start.partition = v
                case .project: guard let v = try name(&p) else { return false }; start.project = v
                case .user: guard let v = try name(&p) else { return false }; start.user = v
                case .shared:
                    guard let v = try string(&p), let mode = SharedMode(rawValue: v) else { return false }
                    start.shared = mode
                case .numNodes: guard let v = try int(&p, int32) else { return false }; start.numNodes = v
                case .numHwthreads: guard let v = try int(&p, int32) else { return false }; start.numHwthreads = v
                case .numAcc: guard let v = try int(&p, int32) else { return false }; start.numAcc = v
                case .smt: guard let v = try int(&p, int32) else { return false }; start.smt = v
                case .startTime: guard let v = try epoch(&p) else { return false }; start.startTime = v
                case .submitTime: guard let v = try epoch(&p) else { return false }; start.submitTime = v
                case .walltime: guard let v = try int(&p, 0...JobStart.maxDuration * 10) else { return false }; start.walltime = v
                case .duration: guard try int(&p, int32) != nil else { return false }
                case .arrayJobId: guard let v = try int(&p) else { return false }; start.arrayJobId = v
                case .monitoringStatus: guard let v = try int(&p, 0...3) else { return false }; start.monitoringStatus = v
                case .requestedMemory: guard let v = try int(&p) else { return false }; start.requestedMemory = v
                case .id: guard try int(&p) != nil else { return false }
                case .energy: guard let v = try number(&p) else { return false }; start.energy = v
                case .metaData: guard let v = try stringMap(&p) else { return false }; start.metaData = v
                case .footprint: guard let v = try numberMap(&p) else { return false }; start.footprint = v
                case .energyFootprint: guard let v = try numberMap(&p) else { return false }; start.energyFootprint = v
                case .resources: guard let v = try list(&p, resource) else { return false }; start.resources = v
                case .tags:
                    // Tags are rare in starts: only an empty list is read here.
                    guard try p.value() == .array([]) else { return false }
                case .jobState, .statistics, .concurrentJobs: _ = try p.value()  // read, not used (as the full decoder)
                }
                return true
            }
            guard complete, seen & 1 != 0 else { return nil }  // jobId is required
        } catch {
            return nil
        }
        return start
    }

    /// A stop in the plain shape, nil for anything else.
    static func stop(_ bytes: UnsafeBufferPointer<UInt8>) -> JobStop? {
        var p = JSONParser(bytes: bytes)
        var jobId: Int64?, stopTime: Int64?, startTime: Int64?, cluster: String?, state: String?
        var seen: UInt8 = 0
        do {
            let complete = try members(&p) { key, p throws(JSONParseError) -> Bool in
                let bit: UInt8 = switch key {
                case "jobId": 1
                case "cluster": 2
                case "startTime": 4
                case "stopTime": 8
                case "jobState", "state": 16  // one of the two spellings (both: the full decoder compares them)
                default: 0
                }
                guard bit != 0, seen & bit == 0 else { return false }
                seen |= bit
                if try null(&p) { return true }
                switch bit {
                case 1: jobId = try int(&p, JobStart.jobIds); return jobId != nil
                case 2: cluster = try name(&p); return cluster != nil
                case 4: guard let v = try epoch(&p) else { return false }; startTime = v == 0 ? nil : v
                case 8: guard let v = try epoch(&p), v != 0 else { return false }; stopTime = v
                default: state = try string(&p); return state != nil
                }
                return true
            }
            guard complete, let jobId, let stopTime else { return nil }
            var parsed = JobState.completed
            if let state, !state.isEmpty {
                guard let s = JobState(rawValue: state) else { return nil }
                parsed = s
            }
            return JobStop(jobId: jobId, cluster: cluster?.isEmpty == true ? nil : cluster, startTime: startTime, state: parsed, stopTime: stopTime)
        } catch {
            return nil
        }
    }

    // MARK: pieces

    private static let int32 = Int64(Int32.min)...Int64(Int32.max)

    /// Reads `{ "key": value, ... }` (the whole document), calling `member` at each value;
    /// false as soon as a member is not in the plain shape or text follows the object.
    private static func members(_ p: inout JSONParser, _ member: (String, inout JSONParser) throws(JSONParseError) -> Bool) throws(JSONParseError) -> Bool {
        p.skipSpace()
        guard try object(&p, member) else { return false }
        p.skipSpace()
        return p.i == p.bytes.count
    }

    /// One object at the parser's position, each member handed to `member`.
    private static func object(_ p: inout JSONParser, _ member: (String, inout JSONParser) throws(JSONParseError) -> Bool) throws(JSONParseError) -> Bool {
        guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "{") else { return false }
        p.i += 1
        p.skipSpace()
        if p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "}") { p.i += 1; return true }
        while true {
            p.skipSpace()
            guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "\"") else { return false }
            let key = try p.string()
            p.skipSpace()
            guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: ":") else { return false }
            p.i += 1
            p.skipSpace()
            guard try member(key, &p) else { return false }
            p.skipSpace()
            guard p.i < p.bytes.count else { return false }
            if p.bytes[p.i] == UInt8(ascii: ",") { p.i += 1; continue }
            if p.bytes[p.i] == UInt8(ascii: "}") { p.i += 1; return true }
            return false
        }
    }

    /// One array at the parser's position, each element handed to `element`.
    private static func array(_ p: inout JSONParser, _ element: (inout JSONParser) throws(JSONParseError) -> Bool) throws(JSONParseError) -> Bool {
        guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "[") else { return false }
        p.i += 1
        p.skipSpace()
        if p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "]") { p.i += 1; return true }
        while true {
            p.skipSpace()
            guard try element(&p) else { return false }
            p.skipSpace()
            guard p.i < p.bytes.count else { return false }
            if p.bytes[p.i] == UInt8(ascii: ",") { p.i += 1; continue }
            if p.bytes[p.i] == UInt8(ascii: "]") { p.i += 1; return true }
            return false
        }
    }

    /// Whether a `null` is next (and read): the full decoder takes it as the key's absence.
    private static func null(_ p: inout JSONParser) throws(JSONParseError) -> Bool {
        guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "n") else { return false }
        _ = try p.literal("null", .null)
        return true
    }

    private static func int(_ p: inout JSONParser, _ range: ClosedRange<Int64> = Int64.min...Int64.max) throws(JSONParseError) -> Int64? {
        guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p.bytes[p.i]),
              case .integer(let v) = try p.number(), range.contains(v) else { return nil }
        return v
    }

    /// Epoch seconds as ``JobStart/epoch(_:_:)`` takes them: 0 (unknown) or within its range.
    private static func epoch(_ p: inout JSONParser) throws(JSONParseError) -> Int64? {
        guard let t = try int(&p), t == 0 || JobStart.epochSeconds.contains(t) else { return nil }
        return t
    }

    private static func number(_ p: inout JSONParser) throws(JSONParseError) -> Double? {
        guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p.bytes[p.i]) else { return nil }
        switch try p.number() {
        case .integer(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    private static func string(_ p: inout JSONParser) throws(JSONParseError) -> String? {
        guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "\"") else { return nil }
        return try p.string()
    }

    /// A name as ``StrictObject/name(_:)`` takes it; names beyond ASCII go the full way.
    private static func name(_ p: inout JSONParser) throws(JSONParseError) -> String? {
        guard let s = try string(&p), s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
        return s
    }

    private static func stringMap(_ p: inout JSONParser) throws(JSONParseError) -> [String: String]? {
        var out: [String: String] = [:]
        let ok = try object(&p) { key, p throws(JSONParseError) -> Bool in
            if try null(&p) { out[key] = ""; return true }
            guard let v = try string(&p) else { return false }
            out[key] = v
            return true
        }
        return ok ? out : nil
    }

    private static func numberMap(_ p: inout JSONParser) throws(JSONParseError) -> [String: Double]? {
        var out: [String: Double] = [:]
        let ok = try object(&p) { key, p throws(JSONParseError) -> Bool in
            if try null(&p) { out[key] = 0; return true }
            guard let v = try number(&p) else { return false }
            out[key] = v
            return true
        }
        return ok ? out : nil
    }

    /// An array whose every element `element` reads; nil when one is not in the plain shape.
    private static func list<T>(_ p: inout JSONParser, _ element: (inout JSONParser) throws(JSONParseError) -> T?) throws(JSONParseError) -> [T]? {
        var out: [T] = []
        let ok = try array(&p) { p throws(JSONParseError) -> Bool in
            guard let value = try element(&p) else { return false }
            out.append(value)
            return true
        }
        return ok ? out : nil
    }

    /// One host of `resources`.
    private static func resource(_ p: inout JSONParser) throws(JSONParseError) -> JobResource? {
        var resource = JobResource(hostname: "")
        var seen: UInt8 = 0
        let ok = try object(&p) { key, p throws(JSONParseError) -> Bool in
            let bit: UInt8 = switch key {
            case "hostname": 1
            case "hwthreads": 2
            case "accelerators": 4
            case "configuration": 8
            default: 0
            }
            guard bit != 0, seen & bit == 0 else { return false }
            seen |= bit
            if try null(&p) { return true }
            switch bit {
            case 1: guard let v = try name(&p) else { return false }; resource.hostname = v
            case 2: guard let v = try list(&p, { p throws(JSONParseError) in try int(&p) }) else { return false }; resource.hwthreads = v
            case 4: guard let v = try list(&p, { p throws(JSONParseError) in try string(&p) }) else { return false }; resource.accelerators = v
            default: guard let v = try string(&p) else { return false }; resource.configuration = v
            }
            return true
        }
        return ok ? resource : nil
    }
}
