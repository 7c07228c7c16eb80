import Foundation
import Yams

/// clusterd's configuration (`config/clusterd.yaml`). Every key is optional; the defaults
/// are what a single-node installation needs. Command-line flags override the file.
public struct ClusterdConfig: Sendable, Equatable, Decodable {
    /// How to reach NATS.
    public struct NATS: Sendable, Equatable, Decodable {
        /// Server URLs; empty means "start a local nats-server" (embedded default).
        public var servers: [String] = []
        public var name = "clusterd"
        public var user: String?
        public var password: String?
        public var token: String?
        public var credentialsFile: String?
        public var nkeyPublicKey: String?
        public var nkeySeedFile: String?
        public var tlsCA: String?
        public var tlsCertificate: String?
        public var tlsKey: String?
        /// Port of the embedded nats-server: 4222 by default (what the examples and
        /// `clusterd publish` use); another free port when it is taken (logged); 0 = any free port.
        public var embeddedPort = 4222

        /// The defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            servers = try c.decodeIfPresent(type(of: servers).self, forKey: .servers) ?? servers
            name = try c.decodeIfPresent(type(of: name).self, forKey: .name) ?? name
            user = try c.decodeIfPresent(String.self, forKey: .user)
            password = try c.decodeIfPresent(String.self, forKey: .password)
            token = try c.decodeIfPresent(String.self, forKey: .token)
            credentialsFile = try c.decodeIfPresent(String.self, forKey: .credentialsFile)
            nkeyPublicKey = try c.decodeIfPresent(String.self, forKey: .nkeyPublicKey)
            nkeySeedFile = try c.decodeIfPresent(String.self, forKey: .nkeySeedFile)
            tlsCA = try c.decodeIfPresent(String.self, forKey: .tlsCA)
            tlsCertificate = try c.decodeIfPresent(String.self, forKey: .tlsCertificate)
            tlsKey = try c.decodeIfPresent(String.self, forKey: .tlsKey)
            embeddedPort = try c.decodeIfPresent(type(of: embeddedPort).self, forKey: .embeddedPort) ?? embeddedPort
        }

        enum CodingKeys: String, CodingKey {
            case servers, name, user, password, token, embeddedPort = "embedded_port"
            case credentialsFile = "credentials_file", nkeyPublicKey = "nkey_public_key", nkeySeedFile = "nkey_seed_file"
            case tlsCA = "tls_ca", tlsCertificate = "tls_certificate", tlsKey = "tls_key"
        }
    }

    /// Where events come from and how delivery is guaranteed.
    public struct Intake: Sendable, Equatable, Decodable {
        /// `jetstream` (durable, ack after commit) or `core` (at-most-once, for brokers
        /// without JetStream).
        public var mode = "jetstream"
        public var jobSubject = "cc.job.event"
        public var nodeStateSubject = "cc.node.state"
        public var stream = "CC_EVENTS"
        public var consumer = "clusterd_jobs"
        /// Durable consumer of the node-state stage.
        public var nodeConsumer = "clusterd_nodes"
        /// Messages fetched and committed together.
        public var batch = 256
        /// The stream's duplicate window for `Nats-Msg-Id` (seconds).
        public var duplicateWindowSeconds = 600
        /// How long the broker waits for an ack before redelivering (seconds). After a crash,
        /// the batch that was in flight comes back only after this time, so keep it short; a
        /// batch normally commits in milliseconds.
        public var ackWaitSeconds = 15
        /// Stream retention (days).
        public var maxAgeDays = 30
        /// A message whose application failed or ended with the process this many times is
        /// dead-lettered as `poison_pill` and never retried again.
        public var maxAttempts = 3
        /// Queue group in core mode, so several instances share the events.
        public var queueGroup = "clusterd"
        /// Replicas of the streams and key-value buckets clusterd creates (3 on a NATS cluster).
        /// A stream that exists keeps its own settings.
        public var replicas = 1

        /// The defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            mode = try c.decodeIfPresent(type(of: mode).self, forKey: .mode) ?? mode
            jobSubject = try c.decodeIfPresent(type(of: jobSubject).self, forKey: .jobSubject) ?? jobSubject
            nodeStateSubject = try c.decodeIfPresent(type(of: nodeStateSubject).self, forKey: .nodeStateSubject) ?? nodeStateSubject
            stream = try c.decodeIfPresent(type(of: stream).self, forKey: .stream) ?? stream
            consumer = try c.decodeIfPresent(type(of: consumer).self, forKey: .consumer) ?? consumer
            nodeConsumer = try c.decodeIfPresent(type(of: nodeConsumer).self, forKey: .nodeConsumer) ?? nodeConsumer
            batch = try c.decodeIfPresent(type(of: batch).self, forKey: .batch) ?? batch
            duplicateWindowSeconds = try c.decodeIfPresent(type(of: duplicateWindowSeconds).self, forKey: .duplicateWindowSeconds) ?? duplicateWindowSeconds
            ackWaitSeconds = try c.decodeIfPresent(type(of: ackWaitSeconds).self, forKey: .ackWaitSeconds) ?? ackWaitSeconds
            maxAgeDays = try c.decodeIfPresent(type(of: maxAgeDays).self, forKey: .maxAgeDays) ?? maxAgeDays
            maxAttempts = try c.decodeIfPresent(type(of: maxAttempts).self, forKey: .maxAttempts) ?? maxAttempts
            replicas = try c.decodeIfPresent(type(of: replicas).self, forKey: .replicas) ?? replicas
            queueGroup = try c.decodeIfPresent(type(of: queueGroup).self, forKey: .queueGroup) ?? queueGroup
        }

        enum CodingKeys: String, CodingKey {
            case mode, stream, consumer, batch
            case jobSubject = "job_subject", nodeStateSubject = "node_state_subject", nodeConsumer = "node_consumer"
            case duplicateWindowSeconds = "duplicate_window_seconds", ackWaitSeconds = "ack_wait_seconds"
            case maxAgeDays = "max_age_days", queueGroup = "queue_group", maxAttempts = "max_attempts", replicas
        }
    }

    /// Files on disk.
    public struct Storage: Sendable, Equatable, Decodable {
        /// Data directory; the database and archive default to paths inside it.
        public var dataDir = "./clusterd-data"
        /// SQLite file (default `<data_dir>/clusterd.db`).
        public var database: String?
        /// Job-archive root (default `<data_dir>/archive`).
        public var archive: String?
        /// How long a write waits for a lock held by another connection before the batch is
        /// given back to the broker for redelivery (milliseconds).
        public var busyTimeoutMilliseconds = 5000

        /// The defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            dataDir = try c.decodeIfPresent(type(of: dataDir).self, forKey: .dataDir) ?? dataDir
            database = try c.decodeIfPresent(String.self, forKey: .database)
            archive = try c.decodeIfPresent(String.self, forKey: .archive)
            busyTimeoutMilliseconds = try c.decodeIfPresent(Int.self, forKey: .busyTimeoutMilliseconds) ?? busyTimeoutMilliseconds
        }

        enum CodingKeys: String, CodingKey {
            case dataDir = "data_dir", database, archive, busyTimeoutMilliseconds = "busy_timeout_ms"
        }
    }

    /// The job stage.
    public struct Jobs: Sendable, Equatable, Decodable {
        /// cluster.json files installed into the archive at start (besides those already there).
        public var clusterFiles: [String] = []
        /// How long a stop waits for its start before it is dead-lettered (seconds).
        public var heldStopTimeoutSeconds = 3600
        /// Finished jobs older than this (days) leave the archive and the job table, unless
        /// protected; 0 keeps everything.
        public var archiveRetentionDays = 0

        /// The defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            clusterFiles = try c.decodeIfPresent(type(of: clusterFiles).self, forKey: .clusterFiles) ?? clusterFiles
            heldStopTimeoutSeconds = try c.decodeIfPresent(type(of: heldStopTimeoutSeconds).self, forKey: .heldStopTimeoutSeconds) ?? heldStopTimeoutSeconds
            archiveRetentionDays = try c.decodeIfPresent(Int.self, forKey: .archiveRetentionDays) ?? archiveRetentionDays
        }

        enum CodingKeys: String, CodingKey {
            case clusterFiles = "cluster_files", heldStopTimeoutSeconds = "held_stop_timeout_seconds"
            case archiveRetentionDays = "archive_retention_days"
        }
    }

    /// The node-state stage.
    public struct Nodes: Sendable, Equatable, Decodable {
        /// Change points last seen longer ago are deleted (each node's newest row stays).
        public var historyRetentionHours = 720

        /// The defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            historyRetentionHours = try c.decodeIfPresent(type(of: historyRetentionHours).self, forKey: .historyRetentionHours) ?? historyRetentionHours
        }

        enum CodingKeys: String, CodingKey {
            case historyRetentionHours = "history_retention_hours"
        }
    }

    /// Health evaluation and alerts.
    public struct Health: Sendable, Equatable, Decodable {
        /// Topology file (rackscope model); nil: alerts carry no site/room/rack labels.
        public var topology: String?
        /// Checks library; nil: nothing is evaluated.
        public var checks: String?
        /// How often time-driven rules (for, keep_firing_for, freshness) are evaluated.
        public var evaluationIntervalMilliseconds = 1000
        /// Firing alerts are re-sent this often.
        public var resendIntervalSeconds = 300
        /// Alerts go to `<prefix>.<severity>.<cluster>.<entity>`.
        public var alertPrefix = "clusterd.alert"
        /// JetStream stream capturing every alert.
        public var alertStream = "CLUSTERD_ALERTS"
        /// Alert transitions, and alerts resolved, longer ago than this are deleted.
        public var historyRetentionDays = 90

        /// The defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            topology = try c.decodeIfPresent(String.self, forKey: .topology)
            checks = try c.decodeIfPresent(String.self, forKey: .checks)
            evaluationIntervalMilliseconds = try c.decodeIfPresent(Int.self, forKey: .evaluationIntervalMilliseconds) ?? evaluationIntervalMilliseconds
            resendIntervalSeconds = try c.decodeIfPresent(Int.self, forKey: .resendIntervalSeconds) ?? resendIntervalSeconds
            alertPrefix = try c.decodeIfPresent(String.self, forKey: .alertPrefix) ?? alertPrefix
            alertStream = try c.decodeIfPresent(String.self, forKey: .alertStream) ?? alertStream
            historyRetentionDays = try c.decodeIfPresent(Int.self, forKey: .historyRetentionDays) ?? historyRetentionDays
        }

        enum CodingKeys: String, CodingKey {
            case topology, checks, evaluationIntervalMilliseconds = "evaluation_interval_ms"
            case resendIntervalSeconds = "resend_interval_seconds", alertPrefix = "alert_prefix", alertStream = "alert_stream"
            case historyRetentionDays = "history_retention_days"
        }
    }

    /// The metric stream (cc-metric-collector's NATS sink).
    public struct Metrics: Sendable, Equatable, Decodable {
        /// Subject(s) the collectors publish on (the sink's `database`); wildcards allowed.
        public var subject = "cc.metrics.>"
        /// Cluster of lines without a `cluster` tag (cc-metric-store's `cluster-tag`).
        public var defaultCluster = ""
        /// Seconds per buffered sample (one slot of the ring per series).
        public var resolutionSeconds = 60
        /// How long samples are kept in memory (the archive reads a stopped job's data from here).
        public var retentionHours = 24
        /// The buffers are written to `<data_dir>/metrics.checkpoint` this often and at shutdown.
        public var checkpointIntervalSeconds = 300
        /// Series the buffers hold at most, in all (each costs retention / resolution × 4 bytes).
        public var maxSeries = 100_000
        /// Series of one cluster at most.
        public var maxSeriesPerCluster = 100_000
        /// Series of hosts that no cluster.json and no topology lists, at most.
        public var maxUnknownHostSeries = 1_000

        /// The defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            maxSeries = try c.decodeIfPresent(Int.self, forKey: .maxSeries) ?? maxSeries
            maxSeriesPerCluster = try c.decodeIfPresent(Int.self, forKey: .maxSeriesPerCluster) ?? maxSeriesPerCluster
            maxUnknownHostSeries = try c.decodeIfPresent(Int.self, forKey: .maxUnknownHostSeries) ?? maxUnknownHostSeries
            subject = try c.decodeIfPresent(String.self, forKey: .subject) ?? subject
            defaultCluster = try c.decodeIfPresent(String.self, forKey: .defaultCluster) ?? defaultCluster
            resolutionSeconds = try c.decodeIfPresent(Int.self, forKey: .resolutionSeconds) ?? resolutionSeconds
            retentionHours = try c.decodeIfPresent(Int.self, forKey: .retentionHours) ?? retentionHours
            checkpointIntervalSeconds = try c.decodeIfPresent(Int.self, forKey: .checkpointIntervalSeconds) ?? checkpointIntervalSeconds
        }

        enum CodingKeys: String, CodingKey {
            case subject, defaultCluster = "default_cluster", resolutionSeconds = "resolution_seconds"
            case retentionHours = "retention_hours", checkpointIntervalSeconds = "checkpoint_interval_seconds"
            case maxSeries = "max_series", maxSeriesPerCluster = "max_series_per_cluster", maxUnknownHostSeries = "max_unknown_host_series"
        }
    }

    /// The fleet poller.
    public struct FleetSettings: Sendable, Equatable, Decodable {
        /// How often every active server is checked.
        public var checkIntervalSeconds = 30
        /// Health checks are kept this long (each server's newest always).
        public var checkRetentionDays = 30
        /// Total timeout of one `GET {api_url}/health` (connect included).
        public var timeoutSeconds = 5
        /// Checks running at the same time.
        public var concurrency = 10
        /// Token references each organization may use, as prefixes: `env:ACME_` (variables whose
        /// name starts so), `file:/etc/clusterd/secrets/acme/` (files below that directory).
        /// An organization without an entry may register no tokenRef: no organization can make
        /// clusterd send another's secret (or any file) to a URL of its choosing.
        public var tokenRefs: [String: [String]] = [:]

        /// The defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            checkIntervalSeconds = try c.decodeIfPresent(Int.self, forKey: .checkIntervalSeconds) ?? checkIntervalSeconds
            checkRetentionDays = try c.decodeIfPresent(Int.self, forKey: .checkRetentionDays) ?? checkRetentionDays
            timeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .timeoutSeconds) ?? timeoutSeconds
            concurrency = try c.decodeIfPresent(Int.self, forKey: .concurrency) ?? concurrency
            tokenRefs = try c.decodeIfPresent([String: [String]].self, forKey: .tokenRefs) ?? tokenRefs
        }

        enum CodingKeys: String, CodingKey {
            case checkRetentionDays = "check_retention_days"
            case checkIntervalSeconds = "check_interval_seconds", timeoutSeconds = "timeout_seconds", concurrency, tokenRefs = "token_refs"
        }
    }

    /// Alertmanager receivers alerts are forwarded to.
    public struct AlertmanagerSettings: Sendable, Equatable, Decodable {
        /// One Alertmanager (or HA set behind one URL).
        public struct Receiver: Sendable, Equatable, Decodable {
            /// Names its durable consumer `clusterd_am_<name>`.
            public var name: String
            /// Base URL, e.g. `http://127.0.0.1:9093`; alerts go to `<url>/api/v2/alerts`.
            public var url: String
            /// Severities forwarded (`crit`, `warn`, `unknown`); empty: all.
            public var severities: [String] = []
            public var timeoutSeconds = 5
            /// Firing alerts are posted again this often (Prometheus: about every minute), so an
            /// Alertmanager that restarted empty has them back within this time.
            public var resendSeconds = 60

            enum CodingKeys: String, CodingKey { case name, url, severities, timeoutSeconds = "timeout_seconds", resendSeconds = "resend_seconds" }

            /// A receiver.
            public init(name: String, url: String, severities: [String] = [], timeoutSeconds: Int = 5) {
                self.name = name
                self.url = url
                self.severities = severities
                self.timeoutSeconds = timeoutSeconds
            }

            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                name = try c.decode(String.self, forKey: .name)
                url = try c.decode(String.self, forKey: .url)
                severities = try c.decodeIfPresent([String].self, forKey: .severities) ?? []
                timeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .timeoutSeconds) ?? timeoutSeconds
                resendSeconds = try c.decodeIfPresent(Int.self, forKey: .resendSeconds) ?? resendSeconds
            }
        }

        public var receivers: [Receiver] = []

        /// The defaults (no forwarding).
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            receivers = try c.decodeIfPresent([Receiver].self, forKey: .receivers) ?? []
        }

        enum CodingKeys: String, CodingKey { case receivers }
    }

    /// clusterd's own health and metrics over HTTP.
    public struct Observability: Sendable, Equatable, Decodable {
        /// `host:port` of `/metrics` (Prometheus), `/healthz` and `/readyz`; empty: off.
        public var listen = "127.0.0.1:9464"

        /// The defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            // Yams reads `listen: ""` as null; a key that is there but empty turns the endpoint off.
            if c.contains(.listen) { listen = try c.decodeNil(forKey: .listen) ? "" : c.decode(String.self, forKey: .listen) }
        }

        enum CodingKeys: String, CodingKey { case listen }
    }

    /// Subjects clusterd publishes on.
    public struct Publish: Sendable, Equatable, Decodable {
        /// Dead letters go to `<prefix>.<stage>`.
        public var deadLetterPrefix = "clusterd.dlq"
        /// Results go to `<prefix>.<stage>.<message-id>`.
        public var resultPrefix = "clusterd.result"
        /// Stream keeping dead letters for inspection.
        public var deadLetterStream = "CLUSTERD_DLQ"
        /// Dead letters older than this are deleted from the `dead_letter` table (the stream
        /// keeps its own `intake.max_age_days`).
        public var deadLetterRetentionDays = 30

        /// The defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            deadLetterPrefix = try c.decodeIfPresent(type(of: deadLetterPrefix).self, forKey: .deadLetterPrefix) ?? deadLetterPrefix
            resultPrefix = try c.decodeIfPresent(type(of: resultPrefix).self, forKey: .resultPrefix) ?? resultPrefix
            deadLetterStream = try c.decodeIfPresent(type(of: deadLetterStream).self, forKey: .deadLetterStream) ?? deadLetterStream
            deadLetterRetentionDays = try c.decodeIfPresent(Int.self, forKey: .deadLetterRetentionDays) ?? deadLetterRetentionDays
        }

        enum CodingKeys: String, CodingKey {
            case deadLetterPrefix = "dead_letter_prefix", resultPrefix = "result_prefix", deadLetterStream = "dead_letter_stream"
            case deadLetterRetentionDays = "dead_letter_retention_days"
        }
    }

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
