import Model

/// The part of a job the archive needs to collect its metrics.
public struct JobWindow: Sendable {
    /// A host of the job and, when known, the hardware threads and accelerators it had.
    public struct Host: Sendable {
        public var hostname: String
        public var hwthreads: [Int64]?
        public var accelerators: [String]?

        /// A host.
        public init(hostname: String, hwthreads: [Int64]? = nil, accelerators: [String]? = nil) {
            self.hostname = hostname
            self.hwthreads = hwthreads
            self.accelerators = accelerators
        }
    }

    public var cluster: String
    public var subCluster: String
    public var hosts: [Host]
    /// Epoch seconds.
    public var start: Int64
    public var stop: Int64

    /// A window.
    public init(cluster: String, subCluster: String, hosts: [Host], start: Int64, stop: Int64) {
        self.cluster = cluster
        self.subCluster = subCluster
        self.hosts = hosts
        self.start = start
        self.stop = stop
    }
}

/// A job's metrics as ClusterCockpit archives them.
public struct JobMetrics: Sendable {
    /// data.json: metric → scope → {unit, timestep, series: [{hostname, id?, statistics, data}]}.
    public var data: JSONValue
    /// meta.json `statistics`: metric → {unit, avg, min, max}.
    public var statistics: JSONValue
    /// meta.json `footprint` (and the job row): `<metric>_<avg|min|max>` → value.
    public var footprint: [(key: String, value: Double)]
}

/// Builds a job's data.json, statistics and footprint from the metric buffers, as
/// cc-backend's archiver does: every metric of the subcluster at node scope (finer native
/// scopes combined per the metric's aggregation), plus the native scope for jobs on at most
/// 8 nodes and for accelerators; statistics from the node series, avg = round2(Σ node avg / numNodes).
public struct JobDataBuilder: Sendable {
    let store: MetricStore
    /// Metrics the collectors send as counters (`metrics.counters`): data.json and the
    /// statistics show their per-second rate, as the checks' `rate: true` does.
    let counters: Set<String>
    /// Where a host's metric comes from when the buffers hold nothing of it for the job: its
    /// values per `step` seconds from `from` (NaN where none), or nil (`metrics.prometheus_url`).
    let fallback: (@Sendable (_ metric: String, _ host: String, _ from: Int64, _ to: Int64, _ step: Int64) -> [Float]?)?

    /// A builder over `store`; `counters` are shown as rates; `fallback` fills what the buffers lack.
    public init(store: MetricStore, counters: Set<String> = [],
                fallback: (@Sendable (_ metric: String, _ host: String, _ from: Int64, _ to: Int64, _ step: Int64) -> [Float]?)? = nil) {
        self.store = store
        self.counters = counters
        self.fallback = fallback
    }

    /// The job's metrics; nil when the buffers hold nothing for its hosts and window.
    public func build(_ job: JobWindow, cluster: ClusterConfig) -> JobMetrics? {
        // The buffers hold `capacity` slots back from their newest sample: a longer job gets
        // its last `retention` seconds, so the work and memory per series stay bounded by the
        // ring whatever the job's length (a year at 60 s would be 527,040 slots per series).
        let from = max(job.start, job.stop - Int64(store.capacity) * store.resolution)
        var data: [(key: String, value: JSONValue)] = []
        var statistics: [(key: String, value: JSONValue)] = []
        var footprint: [(key: String, value: Double)] = []
        for metric in cluster.metrics(of: job.subCluster) {
            var nodeSeries: [JSONValue] = []
            var nativeSeries: [JSONValue] = []
            var nodeStats: [(avg: Double, min: Double, max: Double)] = []
            for host in job.hosts {
                let all = store.series(cluster: job.cluster, host: host.hostname, metric: metric.name)
                // The native scope; a collector that sends the metric per node only still counts.
                let scope = all.contains { $0.scope == metric.scope } ? metric.scope : "node"
                let keys = all.filter { key in
                    guard key.scope == scope else { return false }
                    if key.scope == "hwthread", let threads = host.hwthreads { return threads.contains { String($0) == key.id } }
                    if key.scope == "accelerator", let accs = host.accelerators { return accs.contains(key.id) }
                    return true
                }.sorted { (Int($0.id) ?? Int.max, $0.id) < (Int($1.id) ?? Int.max, $1.id) }
                let counter = counters.contains(metric.name)
                let rows = keys.map { key in
                    // A counter's rate needs the slot before the job's first one.
                    (key, counter ? Self.rates(store.read(key, from: from - store.resolution, to: job.stop), resolution: store.resolution).dropFirst().map { $0 }
                                  : store.read(key, from: from, to: job.stop))
                }.filter { $0.1.contains { !$0.isNaN } }
                if rows.isEmpty, let fallback, let values = fallback(metric.name, host.hostname, job.start, job.stop, store.resolution),
                   let stats = Self.statistics(values) {
                    // Not in the buffers: the node series from the fallback (a Prometheus), node scope only.
                    nodeStats.append(stats)
                    nodeSeries.append(Self.series(host.hostname, id: nil, values, stats))
                    continue
                }
                guard !rows.isEmpty else { continue }
                let combined = scope == "node" ? rows[0].1 : Self.combine(rows.map(\.1), sum: metric.aggregation == "sum")
                guard let stats = Self.statistics(combined) else { continue }
                nodeStats.append(stats)
                nodeSeries.append(Self.series(host.hostname, id: nil, combined, stats))
                if scope != "node" && (job.hosts.count <= 8 || scope == "accelerator") {
                    for (key, values) in rows {
                        if let s = Self.statistics(values) { nativeSeries.append(Self.series(host.hostname, id: key.id, values, s)) }
                    }
                }
            }
            guard !nodeStats.isEmpty else { continue }
            var scopes: [(key: String, value: JSONValue)] = [("node", jobMetric(metric, nodeSeries))]
            if !nativeSeries.isEmpty { scopes.append((metric.scope, jobMetric(metric, nativeSeries))) }
            data.append((metric.name, .object(scopes)))
            let avg = Self.round2(nodeStats.map(\.avg).reduce(0, +) / Double(job.hosts.count))
            let stat = (avg: avg, min: nodeStats.map(\.min).min() ?? 0, max: nodeStats.map(\.max).max() ?? 0)
            statistics.append((metric.name, .object([("unit", metric.unitJSON), ("avg", .double(stat.avg)),
                                                     ("min", .double(Self.round2(stat.min))), ("max", .double(Self.round2(stat.max)))])))
            if let kind = metric.footprint {
                footprint.append(("\(metric.name)_\(kind)", kind == "min" ? Self.round2(stat.min) : kind == "max" ? Self.round2(stat.max) : stat.avg))
            }
        }
        guard !data.isEmpty else { return nil }
        return JobMetrics(data: .object(data), statistics: .object(statistics), footprint: footprint)
    }

    private func jobMetric(_ metric: ClusterConfig.Metric, _ series: [JSONValue]) -> JSONValue {
        .object([("unit", metric.unitJSON), ("timestep", .integer(store.resolution)), ("series", .array(series))])
    }

    static func series(_ host: String, id: String?, _ values: [Float], _ s: (avg: Double, min: Double, max: Double)) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("hostname", .string(host))]
        if let id { members.append(("id", .string(id))) }
        members.append(("statistics", .object([("avg", .double(round2(s.avg))), ("min", .double(round2(s.min))), ("max", .double(round2(s.max)))])))
        members.append(("data", .array(values.map { $0.isNaN ? .null : .double(Double("\($0)") ?? Double($0)) })))
        return .object(members)
    }

    /// A counter's slots as per-second rates, as Prometheus' `rate()` counts: each present slot
    /// against the previous present one (a lower value is a reset: its increase is the value
    /// itself; a gap gives the average over it); the first present slot has none (NaN).
    static func rates(_ values: [Float], resolution: Int64) -> [Float] {
        var out = [Float](repeating: .nan, count: values.count)
        var previous: (index: Int, value: Float)?
        for (i, v) in values.enumerated() where !v.isNaN {
            if let p = previous {
                // The exact difference of two floats, rounded to a float: what float subtraction gives.
                out[i] = Float(counterIncrease(from: Double(p.value), to: Double(v))) / Float(Int64(i - p.index) * resolution)
            }
            previous = (i, v)
        }
        return out
    }

    /// Per-slot sum or average over the rows' present values.
    static func combine(_ rows: [[Float]], sum: Bool) -> [Float] {
        guard let count = rows.first?.count else { return [] }
        return (0..<count).map { i in
            var total: Float = 0
            var n = 0
            for row in rows where !row[i].isNaN {
                total += row[i]
                n += 1
            }
            return n == 0 ? .nan : sum ? total : total / Float(n)
        }
    }

    /// Average, minimum and maximum over the present values; nil when there are none.
    static func statistics(_ values: [Float]) -> (avg: Double, min: Double, max: Double)? {
        var total = 0.0
        var lo = Double.infinity
        var hi = -Double.infinity
        var n = 0
        for v in values where !v.isNaN {
            let d = Double(v)
            total += d
            lo = Swift.min(lo, d)
            hi = Swift.max(hi, d)
            n += 1
        }
        return n == 0 ? nil : (total / Double(n), lo, hi)
    }

    /// Rounds to two decimals, as cc-backend's archiver does.
    static func round2(_ v: Double) -> Double { (v * 100).rounded() / 100 }
}
