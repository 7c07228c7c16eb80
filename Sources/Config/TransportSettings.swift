import Bus
import Foundation

/// The sections of clusterd.yaml about transport and storage: nats, intake, storage, observability, publish.
extension ClusterdConfig {
    /// How to reach NATS.
    public struct NATS: Sendable, Equatable, ConfigSection {
        /// Server URLs; empty means "start a local nats-server" (embedded default).
        public var servers: [String] = []
        /// Client name and authentication (user and password, token, `.creds` file, NKey) and
        /// TLS files; its servers are set at start (``servers`` or the embedded broker).
        public var connection = ConnectionOptions(servers: [], name: "clusterd")
        /// Port of the embedded nats-server: 4222 by default (what the examples and
        /// `clusterd publish` use); another free port when it is taken (logged); 0 = any free port.
        public var embeddedPort = 4222

        /// The defaults.
        public init() {}

        public static var settings: [Setting<Self>] {
            [.value("servers", \.servers), .value("name", \.connection.name), .value("user", \.connection.user),
             .value("password", \.connection.password), .value("token", \.connection.token),
             .value("credentials_file", \.connection.credentialsFile), .value("nkey_public_key", \.connection.nkeyPublicKey),
             .value("nkey_seed_file", \.connection.nkeySeedFile), .value("tls_ca", \.connection.tlsCAFile),
             .value("tls_certificate", \.connection.tlsCertificateFile), .value("tls_key", \.connection.tlsKeyFile),
             .value("embedded_port", \.embeddedPort)]
        }
    }

    /// How events are delivered.
    public enum IntakeMode: String, Sendable, CaseIterable {
        /// Durable: JetStream streams and pull consumers, ack after commit.
        case jetstream
        /// At-most-once core subscriptions, for brokers without JetStream.
        case core
    }

    /// The job archive's two forms, both ClusterCockpit's (cc-backend `archive.kind`).
    public enum ArchiveKind: String, Sendable, CaseIterable {
        /// The v3 directory tree: `<cluster>/<jobId/1000>/<jobId%1000>/<startTime>/meta.json`.
        case file
        /// One SQLite file, cc-backend's `sqlite` archive backend (table `jobs`, a row per job
        /// holding meta.json and data.json): no directory per job.
        case sqlite
    }

    /// Where events come from and how delivery is guaranteed.
    public struct Intake: Sendable, Equatable, ConfigSection {
        /// Durable JetStream (ack after commit) or core NATS (at-most-once).
        public var mode = IntakeMode.jetstream
        public var jobSubject = "cc.job.event"
        public var nodeStateSubject = "cc.node.state"
        public var stream = "CC_EVENTS"
        public var consumer = "clusterd_jobs"
        /// Durable consumer of the node-state stage.
        public var nodeConsumer = "clusterd_nodes"
        /// Messages fetched and committed together.
        public var batch = 256
        /// The stream's duplicate window for `Nats-Msg-Id`.
        public var duplicateWindow = Duration.seconds(600)
        /// How long the broker waits for an ack before redelivering. After a crash, the batch
        /// that was in flight comes back only after this time, so keep it short; a batch
        /// normally commits in milliseconds.
        public var ackWait = Duration.seconds(15)
        /// Stream retention.
        public var maxAge = Duration.oneDay * 30
        /// A message whose application failed or ended with the process this many times is
        /// dead-lettered as `poison_pill` and never retried again.
        public var maxAttempts = 3
        /// Queue group in core mode, so several instances share the events.
        public var queueGroup = "clusterd"
        /// Replicas of the streams and key-value buckets clusterd creates (3 on a NATS cluster).
        /// A stream that exists keeps its own settings, unless it has fewer replicas (an error).
        public var replicas = 1
        /// The HPC clusters this instance owns (empty: all). Job and node events of other
        /// clusters are acknowledged and left to the instance that owns them (counted, no
        /// dead letter, no result); metrics are subscribed per owned cluster.
        public var clusters: [String] = []
        /// Read job and node events from `<job_subject>.<cluster>` and
        /// `<node_state_subject>.<cluster>` (what `clusterd publish --per-cluster-subject`
        /// sends) instead of the plain subjects: with one owned cluster, the broker then
        /// delivers only that cluster's events.
        public var perClusterSubjects = false

        /// The subject the job consumer reads.
        public var jobFilter: String { filter(jobSubject) }
        /// The subject the node-state consumer reads.
        public var nodeStateFilter: String { filter(nodeStateSubject) }

        private func filter(_ subject: String) -> String {
            guard perClusterSubjects else { return subject }
            return clusters.count == 1 ? "\(subject).\(clusters[0])" : "\(subject).*"
        }

        /// The defaults.
        public init() {}

        public static var settings: [Setting<Self>] {
            [.choice("mode", \.mode), .value("job_subject", \.jobSubject), .value("node_state_subject", \.nodeStateSubject),
             .value("stream", \.stream), .value("consumer", \.consumer), .value("node_consumer", \.nodeConsumer),
             .value("batch", \.batch),
             .duration("duplicate_window_seconds", \.duplicateWindow, unit: .seconds(1)),
             .duration("ack_wait_seconds", \.ackWait, unit: .seconds(1)),
             .duration("max_age_days", \.maxAge, unit: .oneDay),
             .value("queue_group", \.queueGroup), .value("max_attempts", \.maxAttempts), .value("replicas", \.replicas),
             .value("clusters", \.clusters), .value("per_cluster_subjects", \.perClusterSubjects)]
        }
    }

    /// Files on disk.
    public struct Storage: Sendable, Equatable, ConfigSection {
        /// Data directory; the database and archive default to paths inside it.
        public var dataDir = "./clusterd-data"
        /// SQLite file (default `<data_dir>/clusterd.db`).
        public var database: String?
        /// Job-archive root (default `<data_dir>/archive`): `version.txt` and the clusters'
        /// `cluster.json` files always, the job entries too with the `file` kind.
        public var archive: String?
        /// Where job entries go: a directory tree, or one SQLite file.
        public var archiveKind = ArchiveKind.file
        /// The SQLite archive of the `sqlite` kind (default `<data_dir>/job-archive.db`).
        public var archiveDatabase: String?
        /// How long a write waits for a lock held by another connection before the batch is
        /// given back to the broker for redelivery.
        public var busyTimeout = Duration.milliseconds(5000)

        /// The defaults.
        public init() {}

        public static var settings: [Setting<Self>] {
            [.value("data_dir", \.dataDir), .value("database", \.database), .value("archive", \.archive),
             .choice("archive_kind", \.archiveKind), .value("archive_database", \.archiveDatabase),
             .duration("busy_timeout_ms", \.busyTimeout, unit: .milliseconds(1))]
        }
    }

    /// clusterd's own health and metrics over HTTP.
    public struct Observability: Sendable, Equatable, ConfigSection {
        /// `host:port` of `/metrics` (Prometheus), `/healthz` and `/readyz`; empty: off.
        public var listen = "127.0.0.1:9464"

        /// The defaults.
        public init() {}

        // Yams reads `listen: ""` as null; a key that is there but empty turns the endpoint off.
        public static var settings: [Setting<Self>] { [.emptyWhenNull("listen", \.listen)] }
    }

    /// Subjects clusterd publishes on.
    public struct Publish: Sendable, Equatable, ConfigSection {
        /// Dead letters go to `<prefix>.<stage>`.
        public var deadLetterPrefix = "clusterd.dlq"
        /// Results go to `<prefix>.<stage>.<message-id>`.
        public var resultPrefix = "clusterd.result"
        /// Stream keeping dead letters for inspection.
        public var deadLetterStream = "CLUSTERD_DLQ"
        /// Dead letters older than this are deleted from the `dead_letter` table (the stream
        /// keeps its own `intake.max_age_days`).
        public var deadLetterRetention = Duration.oneDay * 30
        /// Administrative actions are published on `<prefix>.<resource>`.
        public var auditPrefix = "clusterd.audit"
        /// The `audit_log` table forgets older entries.
        public var auditRetention = Duration.oneDay * 365

        /// The defaults.
        public init() {}

        public static var settings: [Setting<Self>] {
            [.value("dead_letter_prefix", \.deadLetterPrefix), .value("result_prefix", \.resultPrefix),
             .value("dead_letter_stream", \.deadLetterStream),
             .duration("dead_letter_retention_days", \.deadLetterRetention, unit: .oneDay),
             .value("audit_prefix", \.auditPrefix), .duration("audit_retention_days", \.auditRetention, unit: .oneDay)]
        }
    }
}
