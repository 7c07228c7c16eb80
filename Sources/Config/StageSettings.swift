import Foundation

/// The sections of clusterd.yaml about the stages: jobs, nodes, health, metrics, fleet, alertmanager.
extension ClusterdConfig {
    /// The job stage.
    public struct Jobs: Sendable, Equatable, ConfigSection {
        /// cluster.json files installed into the archive at start (besides those already there).
        public var clusterFiles: [String] = []
        /// How long a stop waits for its start before it is dead-lettered.
        public var heldStopTimeout = Duration.seconds(3600)
        /// Finished jobs older than this leave the archive and the job table, unless
        /// protected; zero keeps everything.
        public var archiveRetention = Duration.zero
        /// The archive's disk budget in bytes (0: none) …
        public var archiveQuotaBytes: Int64 = 0
        /// … or in percent of its file system (0: none; used when no byte budget is set).
        public var archiveQuotaPercent = 0.0
        /// Above this share of the budget, finished unprotected jobs are evicted oldest first …
        public var archiveHighWatermarkPercent = 95.0
        /// … down to this share.
        public var archiveLowWatermarkPercent = 60.0
        /// Jobs of these users, projects or tags are never evicted (as protected ones).
        public var archiveKeepUsers: [String] = []
        public var archiveKeepProjects: [String] = []
        public var archiveKeepTags: [String] = []
        /// How often the budget is checked (and at start); zero: only on request
        /// (`clusterd.admin.archive.evict`).
        public var archiveQuotaInterval = Duration.seconds(3600)

        /// The defaults.
        public init() {}

        public static var settings: [Setting<Self>] {
            [.value("cluster_files", \.clusterFiles),
             .duration("held_stop_timeout_seconds", \.heldStopTimeout, unit: .seconds(1)),
             .duration("archive_retention_days", \.archiveRetention, unit: .oneDay),
             .value("archive_quota_bytes", \.archiveQuotaBytes), .value("archive_quota_percent", \.archiveQuotaPercent),
             .value("archive_high_watermark_percent", \.archiveHighWatermarkPercent),
             .value("archive_low_watermark_percent", \.archiveLowWatermarkPercent),
             .value("archive_keep_users", \.archiveKeepUsers), .value("archive_keep_projects", \.archiveKeepProjects),
             .value("archive_keep_tags", \.archiveKeepTags),
             .duration("archive_quota_interval_seconds", \.archiveQuotaInterval, unit: .seconds(1))]
        }
    }

    /// The node-state stage.
    public struct Nodes: Sendable, Equatable, ConfigSection {
        /// Change points last seen longer ago are deleted (each node's newest row stays).
        public var historyRetention = Duration.oneHour * 720

        /// The defaults.
        public init() {}

        public static var settings: [Setting<Self>] { [.duration("history_retention_hours", \.historyRetention, unit: .oneHour)] }
    }

    /// Health evaluation and alerts.
    public struct Health: Sendable, Equatable, ConfigSection {
        /// Topology file (rackscope model); nil: alerts carry no site/room/rack labels.
        public var topology: String?
        /// Checks library; nil: nothing is evaluated.
        public var checks: String?
        /// How often time-driven rules (for, keep_firing_for, freshness) are evaluated.
        public var evaluationInterval = Duration.seconds(1)
        /// Firing alerts are re-sent this often.
        public var resendInterval = Duration.seconds(300)
        /// Alerts go to `<prefix>.<severity>.<cluster>.<entity>`.
        public var alertPrefix = "clusterd.alert"
        /// JetStream stream capturing every alert.
        public var alertStream = "CLUSTERD_ALERTS"
        /// Alert transitions, and alerts resolved, longer ago than this are deleted.
        public var historyRetention = Duration.oneDay * 90

        /// The defaults.
        public init() {}

        public static var settings: [Setting<Self>] {
            [.value("topology", \.topology), .value("checks", \.checks),
             .duration("evaluation_interval_ms", \.evaluationInterval, unit: .milliseconds(1)),
             .duration("resend_interval_seconds", \.resendInterval, unit: .seconds(1)),
             .value("alert_prefix", \.alertPrefix), .value("alert_stream", \.alertStream),
             .duration("history_retention_days", \.historyRetention, unit: .oneDay)]
        }
    }

    /// The metric stream (cc-metric-collector's NATS sink).
    public struct Metrics: Sendable, Equatable, ConfigSection {
        /// Subject(s) the collectors publish on (the sink's `database`); wildcards allowed.
        public var subject = "cc.metrics.>"
        /// Cluster of lines without a `cluster` tag (cc-metric-store's `cluster-tag`).
        public var defaultCluster = ""
        /// Time per buffered sample (one slot of the ring per series).
        public var resolution = Duration.seconds(60)
        /// How long samples are kept in memory (the archive reads a stopped job's data from here).
        public var retention = Duration.oneHour * 24
        /// The buffers are written to `<data_dir>/metrics.checkpoint` this often and at shutdown.
        public var checkpointInterval = Duration.seconds(300)
        /// Series the buffers hold at most, in all (each costs retention / resolution × 4 bytes).
        public var maxSeries = 100_000
        /// Series of one cluster at most.
        public var maxSeriesPerCluster = 100_000
        /// Series of hosts that no cluster.json and no topology lists, at most.
        public var maxUnknownHostSeries = 1_000
        /// Metrics the collectors send as counters (`ib_recv`, energy): a job's data.json and
        /// statistics show their per-second rate (checks say `rate: true` themselves).
        public var counters: [String] = []
        /// A Prometheus to ask when the buffers do not cover a job (clusterd restarted, the job
        /// older than the retention), as cc-backend's Prometheus metric repository does; empty: none.
        public var prometheusURL = ""
        /// Metric → PromQL for one host, `{host}` replaced by the hostname
        /// (`cpu_load: 'node_load1{instance=~"{host}:.*"}'`); metrics not listed are not asked for.
        public var prometheusQueries: [String: String] = [:]

        /// The defaults.
        public init() {}

        public static var settings: [Setting<Self>] {
            [.value("subject", \.subject), .value("default_cluster", \.defaultCluster),
             .duration("resolution_seconds", \.resolution, unit: .seconds(1)),
             .duration("retention_hours", \.retention, unit: .oneHour),
             .duration("checkpoint_interval_seconds", \.checkpointInterval, unit: .seconds(1)),
             .value("max_series", \.maxSeries), .value("max_series_per_cluster", \.maxSeriesPerCluster),
             .value("max_unknown_host_series", \.maxUnknownHostSeries), .value("counters", \.counters),
             .value("prometheus_url", \.prometheusURL), .value("prometheus_queries", \.prometheusQueries)]
        }
    }

    /// The fleet poller.
    public struct FleetSettings: Sendable, Equatable, ConfigSection {
        /// How often every active server is checked.
        public var checkInterval = Duration.seconds(30)
        /// Health checks are kept this long (each server's newest always).
        public var checkRetention = Duration.oneDay * 30
        /// Total timeout of one `GET {api_url}/health` (connect included).
        public var timeout = Duration.seconds(5)
        /// Checks running at the same time.
        public var concurrency = 10
        /// Token references each organization may use, as prefixes: `env:ACME_` (variables whose
        /// name starts so), `file:/etc/clusterd/secrets/acme/` (files below that directory).
        /// An organization without an entry may register no tokenRef: no organization can make
        /// clusterd send another's secret (or any file) to a URL of its choosing.
        public var tokenRefs: [String: [String]] = [:]

        /// The defaults.
        public init() {}

        public static var settings: [Setting<Self>] {
            [.duration("check_interval_seconds", \.checkInterval, unit: .seconds(1)),
             .duration("check_retention_days", \.checkRetention, unit: .oneDay),
             .duration("timeout_seconds", \.timeout, unit: .seconds(1)),
             .value("concurrency", \.concurrency), .value("token_refs", \.tokenRefs)]
        }
    }

    /// Alertmanager receivers alerts are forwarded to.
    public struct AlertmanagerSettings: Sendable, Equatable, ConfigSection {
        /// One Alertmanager (or HA set behind one URL).
        public struct Receiver: Sendable, Equatable, ConfigSection {
            /// Names its durable consumer `clusterd_am_<name>`.
            public var name = ""
            /// Base URL, e.g. `http://127.0.0.1:9093`; alerts go to `<url>/api/v2/alerts`.
            public var url = ""
            /// Severities forwarded (`crit`, `warn`, `unknown`); empty: all.
            public var severities: [String] = []
            /// Timeout of one post.
            public var timeout = Duration.seconds(5)
            /// Firing alerts are posted again this often (Prometheus: about every minute), so an
            /// Alertmanager that restarted empty has them back within this time.
            public var resendInterval = Duration.seconds(60)

            /// No receiver yet (`name` and `url` are required in the file).
            public init() {}

            /// A receiver.
            public init(name: String, url: String, severities: [String] = [], timeout: Duration = .seconds(5)) {
                self.name = name
                self.url = url
                self.severities = severities
                self.timeout = timeout
            }

            public static var settings: [Setting<Self>] {
                [.value("name", \.name), .value("url", \.url), .value("severities", \.severities),
                 .duration("timeout_seconds", \.timeout, unit: .seconds(1)),
                 .duration("resend_seconds", \.resendInterval, unit: .seconds(1))]
            }
        }

        /// Where alerts go; none: no forwarding.
        public var receivers: [Receiver] = []

        /// The defaults (no forwarding).
        public init() {}

        public static var settings: [Setting<Self>] { [.list("receivers", \.receivers)] }
    }
}
