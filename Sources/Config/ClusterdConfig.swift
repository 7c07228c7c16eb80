import Foundation
import Yams

/// clusterd's configuration (`config/clusterd.yaml`). Every key is optional; the defaults
/// are what a single-node installation needs. Command-line flags override the file.
public struct ClusterdConfig: Sendable, Equatable, Decodable {
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
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error`.
    public var logLevel = "info"

    enum CodingKeys: String, CodingKey {
        case nats, intake, storage, jobs, nodes, health, metrics, observability, fleet, alertmanager, publish, logLevel = "log_level"
    }

    /// The defaults.
    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        nats = try c.decodeIfPresent(NATS.self, forKey: .nats) ?? nats
        intake = try c.decodeIfPresent(Intake.self, forKey: .intake) ?? intake
        storage = try c.decodeIfPresent(Storage.self, forKey: .storage) ?? storage
        jobs = try c.decodeIfPresent(Jobs.self, forKey: .jobs) ?? jobs
        nodes = try c.decodeIfPresent(Nodes.self, forKey: .nodes) ?? nodes
        health = try c.decodeIfPresent(Health.self, forKey: .health) ?? health
        metrics = try c.decodeIfPresent(Metrics.self, forKey: .metrics) ?? metrics
        observability = try c.decodeIfPresent(Observability.self, forKey: .observability) ?? observability
        fleet = try c.decodeIfPresent(FleetSettings.self, forKey: .fleet) ?? fleet
        alertmanager = try c.decodeIfPresent(AlertmanagerSettings.self, forKey: .alertmanager) ?? alertmanager
        publish = try c.decodeIfPresent(Publish.self, forKey: .publish) ?? publish
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? logLevel
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
                let problems = unknownKeys(node, schema: Self.schema, path: "")
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

    /// Checks values the file's schema cannot: modes, addresses, URLs, names.
    public func validate() throws(LoadError) {
        if intake.mode != "jetstream" && intake.mode != "core" {
            throw LoadError(description: "intake.mode: \"\(intake.mode)\" is not jetstream or core")
        }
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
        if metrics.resolutionSeconds < 1 { throw LoadError(description: "metrics.resolution_seconds: must be at least 1") }
        if metrics.retentionHours * 3600 < metrics.resolutionSeconds {
            throw LoadError(description: "metrics.retention_hours: must hold at least one sample")
        }
    }

    static let schema: [String: [String]] = [
        "": ["nats", "intake", "storage", "jobs", "nodes", "health", "metrics", "observability", "fleet", "alertmanager", "publish", "log_level"],
        "nats": ["servers", "name", "user", "password", "token", "credentials_file", "nkey_public_key", "nkey_seed_file",
                 "tls_ca", "tls_certificate", "tls_key", "embedded_port"],
        "intake": ["mode", "job_subject", "node_state_subject", "stream", "consumer", "node_consumer", "batch", "duplicate_window_seconds",
                   "ack_wait_seconds", "max_age_days", "queue_group", "max_attempts", "replicas"],
        "storage": ["data_dir", "database", "archive", "busy_timeout_ms"],
        "jobs": ["cluster_files", "held_stop_timeout_seconds", "archive_retention_days"],
        "nodes": ["history_retention_hours"],
        "health": ["topology", "checks", "evaluation_interval_ms", "resend_interval_seconds", "alert_prefix", "alert_stream",
                   "history_retention_days"],
        "observability": ["listen"],
        "fleet": ["check_interval_seconds", "check_retention_days", "timeout_seconds", "concurrency", "token_refs"],
        "alertmanager": ["receivers"],
        "metrics": ["subject", "default_cluster", "resolution_seconds", "retention_hours", "checkpoint_interval_seconds",
                    "max_series", "max_series_per_cluster", "max_unknown_host_series"],
        "publish": ["dead_letter_prefix", "result_prefix", "dead_letter_stream", "dead_letter_retention_days"],
    ]

    /// Every unknown key of the file, each as `line N: unknown key "a.b" (allowed: ...)`.
    static func unknownKeys(_ node: Node, schema: [String: [String]], path: String) -> [String] {
        guard case .mapping(let mapping) = node, let allowed = schema[path] else { return [] }
        var problems: [String] = []
        for (key, value) in mapping {
            let name = key.string ?? ""
            if !allowed.contains(name) {
                problems.append("line \(key.mark?.line ?? 0): unknown key \"\(path.isEmpty ? name : path + "." + name)\" (allowed: \(allowed.joined(separator: ", ")))")
            } else if path.isEmpty {
                problems += unknownKeys(value, schema: schema, path: name)
            }
        }
        return problems
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
}
