import Model

/// One host of a job.
public struct JobResource: Sendable, Equatable {
    /// Host name.
    public var hostname: String
    /// Hardware thread ids used on the host.
    public var hwthreads: [Int64]?
    /// Accelerator ids (PCI addresses) used on the host.
    public var accelerators: [String]?
    /// Free-form configuration.
    public var configuration: String?

    /// A resource on `hostname`.
    public init(hostname: String, hwthreads: [Int64]? = nil, accelerators: [String]? = nil, configuration: String? = nil) {
        self.hostname = hostname
        self.hwthreads = hwthreads
        self.accelerators = accelerators
        self.configuration = configuration
    }
}

/// A job tag (`type`, `name`, optional `scope`).
public struct JobTag: Sendable, Equatable, Hashable {
    /// Tag type, e.g. `app`.
    public var type: String
    /// Tag name, e.g. `lammps`.
    public var name: String
    /// `global`, `admin` or a user name; default `global`.
    public var scope: String

    /// A tag.
    public init(type: String, name: String, scope: String = "global") {
        self.type = type
        self.name = name
        self.scope = scope
    }
}

/// A `start_job` event: cc-backend's `schema.Job` as it arrives on the bus.
public struct JobStart: Sendable, Equatable {
    public var jobId: Int64
    public var cluster: String
    public var subCluster = ""
    public var partition = ""
    public var project = ""
    public var user = ""
    public var shared = SharedMode.none
    public var resources: [JobResource] = []
    public var numNodes: Int64 = 0
    public var numHwthreads: Int64 = 0
    public var numAcc: Int64 = 0
    public var smt: Int64 = 1
    public var startTime: Int64 = 0
    public var submitTime: Int64 = 0
    public var walltime: Int64 = 0
    public var arrayJobId: Int64 = 0
    public var monitoringStatus: Int64 = 1
    public var metaData: [String: String]?
    public var tags: [JobTag] = []
    public var energy: Double = 0
    public var footprint: [String: Double]?
    public var energyFootprint: [String: Double]?
    public var requestedMemory: Int64 = 0

    /// A start for `jobId` on `cluster`; everything else has cc-backend's defaults.
    public init(jobId: Int64, cluster: String) {
        self.jobId = jobId
        self.cluster = cluster
    }

    /// Every key cc-backend's decoder accepts, plus the legacy `exclusive`.
    /// Scheduler job ids are not negative.
    public static let jobIds: ClosedRange<Int64> = 0...Int64.max
    /// Times a job event may carry: 0 (unknown, as cc-backend allows) or 2000-01-01 up to
    /// 2100-01-01. Bounds that keep every sum and difference of times far from overflow; the
    /// stage also refuses times more than ``maxFuture`` after it received the event.
    public static let epochSeconds: ClosedRange<Int64> = 946_684_800...4_102_444_800
    /// How far after its arrival an event's time may lie (clocks a little out of step).
    public static let maxFuture: Int64 = 86_400

    /// The epoch-seconds member `name`: nil when absent, null or 0 (unknown); refused outside
    /// ``epochSeconds`` with the reason spelled out (a Slurm hook sending milliseconds, say).
    static func epoch(_ o: StrictObject, _ name: String) throws(JSONFieldError) -> Int64? {
        guard let t = try o.int(name), t != 0 else { return nil }
        guard epochSeconds.contains(t) else {
            let hint = t > epochSeconds.upperBound && t / 1000 < epochSeconds.upperBound ? " (milliseconds? times are epoch seconds)" : ""
            throw JSONFieldError(path: o.path(of: name), reason: "\(t) is outside 2000-01-01 (\(epochSeconds.lowerBound)) ... 2100-01-01 (\(epochSeconds.upperBound))\(hint); 0 means unknown", code: "out_of_range")
        }
        return t
    }
    /// The longest job accepted: a stop more than this after its start is refused, so an
    /// archive window stays bounded (366 days).
    public static let maxDuration: Int64 = 366 * 86_400

    static let keys = ["jobId", "cluster", "subCluster", "partition", "project", "user", "shared", "jobState", "resources",
                       "numNodes", "numHwthreads", "numAcc", "smt", "startTime", "submitTime", "walltime", "duration",
                       "arrayJobId", "monitoringStatus", "metaData", "tags", "energy", "footprint", "requestedMemory",
                       "energyFootprint", "statistics", "concurrentJobs", "id", "exclusive"]
    static let strictKeys = StrictKeys(keys)
    static let resourceKeys = StrictKeys(["hostname", "hwthreads", "accelerators", "configuration"])
    static let tagKeys = StrictKeys(["type", "name", "scope", "id"])

    /// Decodes the event JSON with cc-backend's rules (defaults `shared=none`,
    /// `monitoringStatus=1`; `jobState` is ignored — a start is always running). The legacy
    /// `exclusive` (0/1/2) is mapped to `shared`; both given and disagreeing is an error.
    public init(json: JSONValue) throws(JobRejection) {
        self = try JobRejection.decoding { try JobStart(parsing: json) }
    }

    private init(parsing json: JSONValue) throws {
        let o = try StrictObject(json, keys: Self.strictKeys)
        guard let jobId = try o.int("jobId", Self.jobIds) else { throw JSONFieldError(path: "jobId", reason: "is required", code: "missing_field") }
        self.init(jobId: jobId, cluster: try o.name("cluster") ?? "")
        subCluster = try o.name("subCluster") ?? ""
        partition = try o.name("partition") ?? ""
        project = try o.name("project") ?? ""
        user = try o.name("user") ?? ""
        if let s = try o.string("shared") {
            guard let mode = SharedMode(rawValue: s) else {
                throw JobRejection.invalidValue("shared: \"\(s)\" is not one of none, single_user, multi_user")
            }
            shared = mode
        }
        if let e = try o.int("exclusive") {
            guard let mode = SharedMode(exclusive: e) else { throw JobRejection.invalidValue("exclusive: \(e) is not 0, 1 or 2") }
            if o.has("shared"), mode != shared {
                throw JobRejection.invalidValue("exclusive: \(e) (\(mode.rawValue)) contradicts shared \"\(shared.rawValue)\"")
            }
            shared = mode
        }
        numNodes = try o.int32("numNodes") ?? 0
        numHwthreads = try o.int32("numHwthreads") ?? 0
        numAcc = try o.int32("numAcc") ?? 0
        smt = try o.int32("smt") ?? 1
        startTime = try Self.epoch(o, "startTime") ?? 0
        submitTime = try Self.epoch(o, "submitTime") ?? 0
        walltime = try o.int("walltime", 0...Self.maxDuration * 10) ?? 0
        _ = try o.int32("duration")
        arrayJobId = try o.int("arrayJobId") ?? 0
        monitoringStatus = try o.int("monitoringStatus", 0...3) ?? 1
        metaData = try o.stringMap("metaData")
        energy = try o.double("energy") ?? 0
        footprint = try o.numberMap("footprint")
        energyFootprint = try o.numberMap("energyFootprint")
        requestedMemory = try o.int("requestedMemory") ?? 0
        _ = try o.int("id")
        for (i, r) in (try o.array("resources") ?? []).enumerated() {
            let ro = try StrictObject(r, keys: Self.resourceKeys, path: "resources[\(i)]")
            var resource = JobResource(hostname: try ro.name("hostname") ?? "")
            resource.configuration = try ro.string("configuration")
            if let threads = try ro.array("hwthreads") {
                resource.hwthreads = try threads.enumerated().map { (k, v) throws(JSONFieldError) in
                    guard case .integer(let t) = v else { throw JSONFieldError(path: ro.path(of: "hwthreads[\(k)]"), reason: "expected an integer", code: "wrong_type") }
                    return t
                }
            }
            if let accs = try ro.array("accelerators") {
                resource.accelerators = try accs.enumerated().map { (k, v) throws(JSONFieldError) in
                    guard case .string(let a) = v else { throw JSONFieldError(path: ro.path(of: "accelerators[\(k)]"), reason: "expected a string", code: "wrong_type") }
                    return a
                }
            }
            resources.append(resource)
        }
        for (i, t) in (try o.array("tags") ?? []).enumerated() {
            let to = try StrictObject(t, keys: Self.tagKeys, path: "tags[\(i)]")
            _ = try to.int("id")
            guard let type = try to.string("type"), !type.isEmpty, let name = try to.string("name"), !name.isEmpty else {
                throw JSONFieldError(path: "tags[\(i)]", reason: "a tag needs a non-empty type and name", code: "missing_field")
            }
            let scope = try to.string("scope") ?? ""
            tags.append(JobTag(type: type, name: name, scope: scope.isEmpty ? "global" : scope))
        }
    }

    /// Writes the job's members as ClusterCockpit's meta.json / `schema.Job` has them, in a
    /// fixed order — also the canonical form compared for idempotent redelivery, so its
    /// spelling never changes (stored starts must keep matching: `JobStartRoundTripTests`).
    public func writeMembers(to w: inout JSONStreamWriter, state: JobState = .running, duration: Int64 = 0, subCluster assigned: String? = nil) {
        var resources = 0..<0, metaData: Range<Int>?
        writeMembers(to: &w, state: state, duration: duration, subCluster: assigned, resourcesAt: &resources, metaDataAt: &metaData)
    }

    /// The same, telling where in `w` the `resources` and `metaData` values were written.
    private func writeMembers(to w: inout JSONStreamWriter, state: JobState, duration: Int64, subCluster assigned: String?,
                              resourcesAt: inout Range<Int>, metaDataAt: inout Range<Int>?) {
        w.member("jobId", jobId)
        w.member("user", user)
        w.member("project", project)
        w.member("cluster", cluster)
        w.member("subCluster", assigned ?? subCluster)
        w.member("partition", partition)
        if arrayJobId != 0 { w.member("arrayJobId", arrayJobId) }
        w.member("numNodes", numNodes)
        if numHwthreads > 0 { w.member("numHwthreads", numHwthreads) }
        if numAcc > 0 { w.member("numAcc", numAcc) }
        w.member("shared", shared.rawValue)
        w.member("monitoringStatus", monitoringStatus)
        w.member("smt", smt)
        w.member("jobState", state.rawValue)
        w.member("startTime", startTime)
        w.member("duration", duration)
        if walltime > 0 { w.member("walltime", walltime) }
        if submitTime != 0 { w.member("submitTime", submitTime) }
        if requestedMemory > 0 { w.member("requestedMemory", requestedMemory) }
        w.key("resources")
        let resourcesStart = w.bytes.count
        Self.write(resources, to: &w)
        resourcesAt = resourcesStart..<w.bytes.count
        if let metaData {
            w.key("metaData")
            let metaDataStart = w.bytes.count
            w.sortedObject(metaData) { $0.value($1) }
            metaDataAt = metaDataStart..<w.bytes.count
        }
        if !tags.isEmpty {
            w.key("tags")
            w.beginArray()
            for tag in tags {
                w.beginObject()
                w.member("type", tag.type)
                w.member("name", tag.name)
                w.member("scope", tag.scope)
                w.endObject()
            }
            w.endArray()
        }
        w.member("energy", energy)
        if let footprint {
            w.key("footprint")
            w.sortedObject(footprint) { $0.value($1) }
        }
        if let energyFootprint {
            w.key("energyFootprint")
            w.sortedObject(energyFootprint) { $0.value($1) }
        }
    }

    /// The job as one JSON object (``writeMembers(to:state:duration:subCluster:)``); with the
    /// defaults, the canonical start event.
    public func jsonText(state: JobState = .running, duration: Int64 = 0, subCluster assigned: String? = nil) -> String {
        var w = JSONStreamWriter(capacity: 1024)
        w.beginObject()
        writeMembers(to: &w, state: state, duration: duration, subCluster: assigned)
        w.endObject()
        return w.text
    }

    /// The canonical start event and, cut from it, the job row's `resources` and `meta_data`
    /// columns: written once per start.
    public struct Text: Sendable {
        /// ``jsonText(state:duration:subCluster:)`` with its defaults.
        public var canonical: String
        /// `resources` as JSON.
        public var resources: String
        /// `metaData` as JSON with sorted keys, nil without metaData.
        public var metaData: String?
    }

    /// The start's ``Text``.
    public var text: Text {
        var w = JSONStreamWriter(capacity: 1024)
        var resources = 0..<0, metaData: Range<Int>?
        w.beginObject()
        writeMembers(to: &w, state: .running, duration: 0, subCluster: nil, resourcesAt: &resources, metaDataAt: &metaData)
        w.endObject()
        return Text(canonical: w.text, resources: String(decoding: w.bytes[resources], as: UTF8.self),
                    metaData: metaData.map { String(decoding: w.bytes[$0], as: UTF8.self) })
    }

    static func write(_ resources: [JobResource], to w: inout JSONStreamWriter) {
        w.beginArray()
        for r in resources {
            w.beginObject()
            w.member("hostname", r.hostname)
            if let threads = r.hwthreads {
                w.key("hwthreads")
                w.beginArray()
                for t in threads { w.value(t) }
                w.endArray()
            }
            if let accelerators = r.accelerators {
                w.key("accelerators")
                w.beginArray()
                for a in accelerators { w.value(a) }
                w.endArray()
            }
            if let c = r.configuration { w.member("configuration", c) }
            w.endObject()
        }
        w.endArray()
    }

    /// A number map as a JSON object with sorted keys (the job row's `footprint` and
    /// `energy_footprint` columns).
    static func sortedText(_ map: [String: Double]) -> String {
        var w = JSONStreamWriter()
        w.sortedObject(map) { $0.value($1) }
        return w.text
    }
}
