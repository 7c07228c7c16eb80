import Foundation

/// The sections of clusterd.yaml about the stages: jobs, nodes, health, metrics, fleet, alertmanager.
extension ClusterdConfig {
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
}
