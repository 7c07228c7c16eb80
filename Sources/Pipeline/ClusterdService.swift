import Bus
import Foundation
import Jobs
import Logging
import NATSServerProcess
import Store

/// clusterd's main job, wired from a configuration: database, archive, optional embedded
/// nats-server, the connection, the durable intake and the single writer loop.
public final class ClusterdService: @unchecked Sendable {
    /// The effective configuration.
    public let config: ClusterdConfig
    /// What happened so far.
    public let counters = PipelineCounters()
    let logger: Logger
    private var embedded: NATSServer?
    private var connection: BusConnection?
    private var loop: IntakeLoop?

    /// A service for `config` (nothing starts before ``start()``).
    public init(config: ClusterdConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Opens the database (migrating it), installs cluster files, connects (starting a local
    /// nats-server when none is configured), sets up the stream and consumer, and starts the
    /// intake loop.
    public func start() throws {
        try FileManager.default.createDirectory(atPath: config.storage.dataDir, withIntermediateDirectories: true)
        let database = try Database(path: config.databasePath, busyTimeoutMilliseconds: Int32(config.storage.busyTimeoutMilliseconds))
        let migrated = try database.migrate(JobProcessor.migrations)
        logger.info("database ready", metadata: ["path": "\(config.databasePath)", "migrations_applied": "\(migrated)"])
        let archive = try ArchiveWriter(root: config.archivePath)
        for file in config.jobs.clusterFiles { try archive.install(try ClusterConfig(contentsOf: file)) }
        let clusters = try ClusterRegistry.load(archiveRoot: config.archivePath)
        if clusters.clusters.isEmpty {
            logger.warning("no clusters known: every start_job will be dead-lettered until <archive>/<cluster>/cluster.json exists",
                           metadata: ["archive": "\(config.archivePath)"])
        } else {
            logger.info("clusters loaded", metadata: ["clusters": "\(clusters.clusters.keys.sorted().joined(separator: ","))"])
        }

        var servers = config.nats.servers
        if servers.isEmpty {
            let server = try NATSServer(directory: URL(fileURLWithPath: config.storage.dataDir).appendingPathComponent("nats"),
                                        port: config.nats.embeddedPort)
            embedded = server
            servers = [server.url]
            logger.info("no NATS server configured: started a local nats-server with JetStream", metadata: ["url": "\(server.url)"])
        }
        var options = ConnectionOptions(servers: servers, name: config.nats.name)
        options.user = config.nats.user
        options.password = config.nats.password
        options.token = config.nats.token
        options.credentialsFile = config.nats.credentialsFile
        options.nkeyPublicKey = config.nats.nkeyPublicKey
        options.nkeySeedFile = config.nats.nkeySeedFile
        options.tlsCAFile = config.nats.tlsCA
        options.tlsCertificateFile = config.nats.tlsCertificate
        options.tlsKeyFile = config.nats.tlsKey
        let logger = self.logger
        let counters = self.counters
        let connection = try BusConnection(options) { event in
            counters.add("nats.\(event)")
            logger.notice("nats connection event", metadata: ["event": "\(event)"])
        }
        self.connection = connection

        let source: any MessageSource
        if config.intake.mode == "core" {
            logger.warning("core NATS intake: delivery is at-most-once; events published while clusterd is down are lost")
            source = try CoreSource(connection: connection, config: config)
        } else {
            source = try Self.retrying(logger: logger, "set up stream \(config.intake.stream)") {
                try JetStreamSource(connection: connection, config: config)
            }
            let js = try JetStream(connection)
            try js.ensureStream(StreamConfig(name: config.publish.deadLetterStream,
                                             description: "clusterd dead letters: every rejected line with its reason",
                                             subjects: ["\(config.publish.deadLetterPrefix).>"],
                                             duplicateWindow: .seconds(config.intake.duplicateWindowSeconds),
                                             maxAge: .seconds(config.intake.maxAgeDays * 86_400)))
        }
        let processor = JobProcessor(database: database, clusters: clusters, archive: archive, config: config,
                                     counters: counters, logger: logger)
        let loop = IntakeLoop(source: source, processor: processor,
                              publisher: OutboxPublisher(database: database, connection: connection, logger: logger),
                              connection: connection, batch: config.intake.batch, counters: counters, logger: logger)
        self.loop = loop
        loop.start()
        logger.info("clusterd running", metadata: ["mode": "\(config.intake.mode)", "subject": "\(config.intake.jobSubject)"])
    }

    /// Finishes the batch in flight, then closes the connection and the embedded server.
    public func stop() {
        loop?.stop()
        loop = nil
        connection?.close()
        connection = nil
        embedded?.stop()
        embedded = nil
        logger.info("clusterd stopped")
    }

    /// Retries `body` until it succeeds (the broker may come up after clusterd, or a
    /// JetStream leader election may take seconds).
    static func retrying<T>(logger: Logger, _ what: String, _ body: () throws -> T) throws -> T {
        var delay = 0.25
        while true {
            do { return try body() } catch {
                logger.warning("\(what) failed; retrying", metadata: ["error": "\(error)", "in_seconds": "\(delay)"])
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 5)
            }
        }
    }
}
