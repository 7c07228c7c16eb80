import Foundation
import Yams

/// clusterd's configuration (`config/clusterd.yaml`). Every key is optional; the defaults
/// are what a single-node installation needs. Command-line flags override the file.
public struct ClusterdConfig: Sendable, Equatable, ConfigSection {
    public var nats = NATS()
    public var intake = Intake()
    public var storage = Storage()
    public var jobs = Jobs()
    public var nodes = Nodes()
    public var health = Health()
    public var metrics = Metrics()
    public var observability = Observability()
    public var fleet = FleetSettings()
    public var alertmanager = AlertmanagerSettings()
    public var publish = Publish()
    public var ha = HA()
    /// How much goes to the log.
    public var logLevel = LogLevel.info

    /// The levels of the log (swift-log's, by name).
    public enum LogLevel: String, Sendable, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    /// The defaults.
    public init() {}

    public static var settings: [Setting<Self>] {
        [.section("nats", \.nats), .section("intake", \.intake), .section("storage", \.storage), .section("jobs", \.jobs),
         .section("nodes", \.nodes), .section("health", \.health), .section("metrics", \.metrics),
         .section("observability", \.observability), .section("fleet", \.fleet), .section("alertmanager", \.alertmanager),
         .section("publish", \.publish), .section("ha", \.ha), .choice("log_level", \.logLevel)]
    }

    /// A configuration file that cannot be used, with the reason.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Loads a YAML file; unknown keys are errors (a typo must not silently fall back to a
    /// default).
    public static func load(path: String) throws(LoadError) -> ClusterdConfig {
        guard let data = FileManager.default.contents(atPath: path) else { throw LoadError(description: "\(path): cannot read the file") }
        return try parse(String(decoding: data, as: UTF8.self), file: path)
    }

    /// Parses YAML text; `file` names it in errors.
    public static func parse(_ yaml: String, file: String) throws(LoadError) -> ClusterdConfig {
        do {
            if let node = try Yams.compose(yaml: yaml) {
                // All of them at once, each on its own line: a typo must not hide the next.
                let problems = unknownKeys(node, shape: Self.shape, path: "")
                if !problems.isEmpty { throw LoadError(description: problems.joined(separator: "\n\(file): ")) }
            }
            if yaml.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return ClusterdConfig() }
            let config = try YAMLDecoder().decode(ClusterdConfig.self, from: yaml)
            try config.validate()
            return config
        } catch let e as LoadError {
            throw LoadError(description: "\(file): \(e.description)")
        } catch let e as DecodingError {
            throw LoadError(description: "\(file): \(Self.describe(e))")
        } catch {
            throw LoadError(description: "\(file): \(error)")
        }
    }

    /// Why `url` is not a NATS server URL libnats can use (nil when it is).
    public static func problem(natsURL url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host, !host.isEmpty else {
            return "\"\(url)\" is not a URL like nats://host:4222"
        }
        guard ["nats", "tls"].contains(scheme.lowercased()) else {
            return "\"\(url)\": scheme \(scheme) is not nats or tls"
        }
        if let port = components.port, !(1...65535).contains(port) { return "\"\(url)\": port \(port) is out of range" }
        return nil
    }

    /// `name` of a durable consumer made this instance's own: with owned clusters their names
    /// (`clusterd_jobs_alex`), as a replica its name (`clusterd_jobs_alex_a`). Each partition
    /// and each replica reads its events in order through a consumer of its own.
    public func durable(_ name: String) -> String {
        var name = name
        if !intake.clusters.isEmpty { name += "_" + intake.clusters.sorted().joined(separator: "_") }
        if ha.isReplicated { name += "_" + ha.instance }
        return name
    }

    /// This instance's durable consumer of the job stage (``durable(_:)`` of `intake.consumer`).
    public var jobConsumer: String { durable(intake.consumer) }
    /// This instance's durable consumer of the node-state stage.
    public var nodeConsumer: String { durable(intake.nodeConsumer) }

    /// The publisher lease's key: one lease per partition (a partition's replicas share it).
    public var leaseKey: String {
        intake.clusters.isEmpty ? "publisher" : "publisher_" + intake.clusters.sorted().joined(separator: "_")
    }

    /// The subjects the metric intake subscribes to: `metrics.subject`, or with owned clusters
    /// (`intake.clusters`) and a subject ending in `.>`, one per owned cluster.
    public var metricSubjects: [String] {
        guard !intake.clusters.isEmpty, metrics.subject.hasSuffix(".>") else { return [metrics.subject] }
        let prefix = metrics.subject.dropLast(2)
        return intake.clusters.map { "\(prefix).\($0)" }
    }

    /// Checks values the file's schema cannot: modes, addresses, URLs, names.
    public func validate() throws(LoadError) {
        if intake.batch < 1 { throw LoadError(description: "intake.batch: must be at least 1") }
        if !observability.listen.isEmpty {
            let parts = observability.listen.split(separator: ":")
            guard parts.count == 2, UInt16(parts[1]) != nil else {
                throw LoadError(description: "observability.listen: \"\(observability.listen)\" is not host:port")
            }
            guard HostAddress.ipv4(of: String(parts[0])) != nil else {
                throw LoadError(description: "observability.listen: host \"\(parts[0])\" does not resolve to an IPv4 address")
            }
        }
        for url in nats.servers {
            if let problem = Self.problem(natsURL: url) { throw LoadError(description: "nats.servers: \(problem)") }
        }
        for r in alertmanager.receivers {
            guard !r.name.isEmpty, r.name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
                throw LoadError(description: "alertmanager.receivers: name \"\(r.name)\" must be letters, digits, _ or -")
            }
            guard r.url.hasPrefix("http://") || r.url.hasPrefix("https://") else {
                throw LoadError(description: "alertmanager.receivers[\(r.name)].url: \"\(r.url)\" is not an http(s) URL")
            }
            for sev in r.severities where !["crit", "warn", "unknown"].contains(sev) {
                throw LoadError(description: "alertmanager.receivers[\(r.name)].severities: \"\(sev)\" is not crit, warn or unknown")
            }
        }
        for cluster in intake.clusters where cluster.isEmpty || !cluster.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) {
            throw LoadError(description: "intake.clusters: \"\(cluster)\" must be letters, digits, _ or - (it is a subject token)")
        }
        if intake.perClusterSubjects && intake.mode == .core {
            throw LoadError(description: "intake.per_cluster_subjects: needs the JetStream intake (intake.mode: jetstream)")
        }
        if ha.isReplicated {
            guard ha.instance.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
                throw LoadError(description: "ha.instance: \"\(ha.instance)\" must be letters, digits, _ or -")
            }
            if intake.mode == .core { throw LoadError(description: "ha.instance: replicas need the JetStream intake (intake.mode: jetstream)") }
            if ha.leaseTTL < .seconds(2) { throw LoadError(description: "ha.lease_ttl_seconds: must be at least 2") }
            if ha.standbyOutbox < ha.leaseTTL * 2 || ha.standbyOutbox >= intake.duplicateWindow {
                throw LoadError(description: "ha.standby_outbox_seconds: must be at least twice ha.lease_ttl_seconds (\(ha.leaseTTL.components.seconds * 2)) "
                                + "and less than intake.duplicate_window_seconds (\(intake.duplicateWindow.components.seconds))")
            }
        }
        if jobs.archiveQuotaBytes < 0 || !(0...100).contains(jobs.archiveQuotaPercent) {
            throw LoadError(description: "jobs.archive_quota_bytes / archive_quota_percent: a byte count ≥ 0, a percent 0–100")
        }
        if !(0 < jobs.archiveLowWatermarkPercent && jobs.archiveLowWatermarkPercent < jobs.archiveHighWatermarkPercent && jobs.archiveHighWatermarkPercent <= 100) {
            throw LoadError(description: "jobs.archive_low_watermark_percent must be above 0 and below archive_high_watermark_percent (at most 100)")
        }
        if metrics.resolution < .seconds(1) { throw LoadError(description: "metrics.resolution_seconds: must be at least 1") }
        if metrics.retention < metrics.resolution {
            throw LoadError(description: "metrics.retention_hours: must hold at least one sample")
        }
    }

    /// Every unknown key of the file, each as `line N: unknown key "a.b" (allowed: ...)`.
    static func unknownKeys(_ node: Node, shape: KeyShape, path: String) -> [String] {
        guard case .section(let keys) = shape else { return [] }
        switch node {
        case .sequence(let entries):
            // A list of sections (alertmanager.receivers): every entry's keys.
            return entries.flatMap { unknownKeys($0, shape: shape, path: path) }
        case .mapping(let mapping):
            var problems: [String] = []
            for (key, value) in mapping {
                let name = key.string ?? ""
                let full = path.isEmpty ? name : path + "." + name
                if let allowed = keys.first(where: { $0.key == name }) {
                    problems += unknownKeys(value, shape: allowed.shape, path: full)
                } else {
                    problems.append("line \(key.mark?.line ?? 0): unknown key \"\(full)\" (allowed: \(keys.map(\.key).joined(separator: ", ")))")
                }
            }
            return problems
        default:
            return []
        }
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ c: [CodingKey]) -> String { c.map(\.stringValue).joined(separator: ".") }
        switch e {
        case .typeMismatch(let type, let c): return "\(path(c.codingPath)): expected \(type)"
        case .valueNotFound(let type, let c): return "\(path(c.codingPath)): missing \(type)"
        case .keyNotFound(let key, let c): return "\(path(c.codingPath + [key])): missing"
        case .dataCorrupted(let c): return "\(path(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }

    /// The SQLite file.
    /// `url` fit for a log: a password (or a token given as the user) replaced by `***`.
    public static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.user != nil else { return url }
        if components.password != nil { components.password = "***" } else { components.user = "***" }
        return components.string ?? url
    }

    public var databasePath: String { storage.database ?? "\(storage.dataDir)/clusterd.db" }
    /// The metric buffers' checkpoint file.
    public var metricCheckpointPath: String { "\(storage.dataDir)/metrics.checkpoint" }
    /// The archive root.
    public var archivePath: String { storage.archive ?? "\(storage.dataDir)/archive" }
    /// The SQLite archive of `storage.archive_kind: sqlite`; nil for the directory tree.
    public var archiveDatabasePath: String? {
        storage.archiveKind == .sqlite ? storage.archiveDatabase ?? "\(storage.dataDir)/job-archive.db" : nil
    }
}
