import Foundation

/// The sections of clusterd.yaml about transport and storage: nats, intake, storage, observability, publish.
extension ClusterdConfig {
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
}
