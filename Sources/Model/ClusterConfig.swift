import Foundation


/// A cluster as its `cluster.json` defines it (ClusterCockpit cluster.schema.json); clusterd
/// needs the name and the subclusters' node lists to validate and place jobs.
public struct ClusterConfig: Sendable, Equatable {
    /// A subcluster and the hosts it owns.
    public struct SubCluster: Sendable, Equatable {
        /// Its name.
        public let name: String
        /// Its nodes; the expression `*` means "every host" (the fallback subcluster).
        public let nodes: String
        let list: NodeList?
    }

    /// A metric as `metricConfig` defines it: unit, native scope, aggregation to the node,
    /// footprint statistic, and the subclusters that do not have it.
    public struct Metric: Sendable, Equatable {
        public let name: String
        /// Unit base (`B`, `F/s`, ... or empty) and prefix (`G`, ... or empty).
        public let unitBase: String
        public let unitPrefix: String
        /// node, socket, memoryDomain, core, hwthread or accelerator.
        public let scope: String
        public let timestep: Int64
        /// `sum` or `avg`: how finer scopes combine into the node value.
        public let aggregation: String
        /// `avg`, `min` or `max` when the metric is part of the job footprint.
        public let footprint: String?
        /// Subclusters that remove the metric.
        public let removedFrom: Set<String>

        /// The unit as ClusterCockpit writes it (`{"base": "B", "prefix": "G"}`).
        public var unitJSON: JSONValue {
            unitPrefix.isEmpty ? .object([("base", .string(unitBase))]) : .object([("base", .string(unitBase)), ("prefix", .string(unitPrefix))])
        }
    }

    /// The cluster name.
    public let name: String
    /// Metrics in file order.
    public let metrics: [Metric]
    /// Subclusters in file order.
    public let subClusters: [SubCluster]
    /// The file as read, copied into the archive unchanged.
    public let document: [UInt8]

    /// Why a cluster.json could not be used.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        /// The file.
        public let file: String
        /// What is wrong.
        public let reason: String
        public var description: String { "\(file): \(reason)" }
    }

    /// Parses a cluster.json document; `file` names it in errors.
    public init(document: [UInt8], file: String) throws(LoadError) {
        let json: JSONValue
        do { json = try JSONValue.parse(document) } catch { throw LoadError(file: file, reason: error.description) }
        guard case .string(let name)? = json["name"], !name.isEmpty else { throw LoadError(file: file, reason: "missing \"name\"") }
        guard case .array(let subs)? = json["subClusters"], !subs.isEmpty else {
            throw LoadError(file: file, reason: "missing \"subClusters\" (at least one is required)")
        }
        var subClusters: [SubCluster] = []
        for (i, sub) in subs.enumerated() {
            guard case .string(let subName)? = sub["name"], !subName.isEmpty else {
                throw LoadError(file: file, reason: "subClusters[\(i)] has no \"name\"")
            }
            var nodes = ""
            if case .string(let n)? = sub["nodes"] { nodes = n }
            var list: NodeList?
            if nodes != "*" && !nodes.isEmpty {
                do { list = try NodeList(nodes) } catch { throw LoadError(file: file, reason: "subClusters[\(i)] (\(subName)): \(error)") }
            }
            subClusters.append(SubCluster(name: subName, nodes: nodes, list: list))
        }
        var metrics: [Metric] = []
        if case .array(let configs)? = json["metricConfig"] {
            for (i, m) in configs.enumerated() {
                guard case .string(let metricName)? = m["name"], !metricName.isEmpty else {
                    throw LoadError(file: file, reason: "metricConfig[\(i)] has no \"name\"")
                }
                var removed = Set<String>()
                if case .array(let subs)? = m["subClusters"] {
                    for sub in subs where sub["remove"] == .bool(true) { if let n = sub["name"]?.stringValue { removed.insert(n) } }
                }
                let timestep: Int64
                if case .integer(let t)? = m["timestep"] { timestep = t } else { timestep = 60 }
                metrics.append(Metric(name: metricName, unitBase: m["unit"]?["base"]?.stringValue ?? "", unitPrefix: m["unit"]?["prefix"]?.stringValue ?? "",
                                      scope: m["scope"]?.stringValue ?? "node", timestep: timestep, aggregation: m["aggregation"]?.stringValue ?? "avg",
                                      footprint: m["footprint"]?.stringValue, removedFrom: removed))
            }
        }
        self.name = name
        self.metrics = metrics
        self.subClusters = subClusters
        self.document = document
    }

    /// The metrics a subcluster has.
    public func metrics(of subCluster: String) -> [Metric] { metrics.filter { !$0.removedFrom.contains(subCluster) } }

    /// Reads a cluster.json file.
    public init(contentsOf path: String) throws(LoadError) {
        guard let data = FileManager.default.contents(atPath: path) else { throw LoadError(file: path, reason: "cannot read the file") }
        try self.init(document: Array(data), file: path)
    }

    /// The subcluster for a job, as cc-backend assigns it: an explicit name must exist;
    /// otherwise the first subcluster whose node list holds `hostname`, else the first
    /// subcluster if its nodes are `*`.
    public func subCluster(named explicit: String, forHost hostname: String) -> SubCluster? {
        if !explicit.isEmpty { return subClusters.first { $0.name == explicit } }
        if let match = subClusters.first(where: { $0.list?.contains(hostname) ?? false }) { return match }
        if let first = subClusters.first, first.nodes == "*" { return first }
        return nil
    }
}

/// The known clusters, by name.
public struct ClusterRegistry: Sendable {
    /// Clusters by name.
    public let clusters: [String: ClusterConfig]

    /// A registry of `clusters`.
    public init(_ clusters: [ClusterConfig]) {
        var byName: [String: ClusterConfig] = [:]
        for c in clusters { byName[c.name] = c }
        self.clusters = byName
    }

    /// Loads every `<root>/<name>/cluster.json` (the job-archive layout, as cc-backend does).
    public static func load(archiveRoot: String) throws(ClusterConfig.LoadError) -> ClusterRegistry {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: archiveRoot)) ?? []
        var clusters: [ClusterConfig] = []
        for entry in entries.sorted() where !entry.hasPrefix(".") {
            let file = "\(archiveRoot)/\(entry)/cluster.json"
            if FileManager.default.fileExists(atPath: file) { clusters.append(try ClusterConfig(contentsOf: file)) }
        }
        return ClusterRegistry(clusters)
    }

    /// The cluster called `name`.
    public subscript(name: String) -> ClusterConfig? { clusters[name] }
}
