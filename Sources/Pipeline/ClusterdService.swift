import Alerts
import API
import Bus
import Config
import Fleet
import Foundation
import Threads
import Health
import Intake
import Integrations
import Jobs
import Logging
import MetricBuffers
import Model
import NATSServerProcess
import Nodes
import Observability
import Processing
import Prometheus
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
    private var loops: [IntakeLoop] = []
    var health: HealthLoop?
    private var metricIntake: MetricIntake?
    private var maintenance: MaintenanceResponder?
    private var micro: MicroService?
    private var fleet: FleetService?
    private var forwarders: [AlertmanagerForwarder] = []
    private var http: ObservabilityServer?
    private var reader: Database?
    /// What a configuration reload replaces: the clusters, the topology (see ``reload(origin:)``).
    var clusters = Reloadable(ClusterRegistry([]))
    let topology = Reloadable(Topology())
    var archive: ArchiveWriter?
    let reloading = NSLock()
    /// The port of `/metrics`, `/healthz`, `/readyz` (nil when off or not bound).
    public var observabilityPort: UInt16? { http?.port }
    /// clusterd's version, as the micro service reports it.
    public static let version = "0.4.0"
    private var checkpointer: WorkerThread?
    private let processMetrics = ProcessMetrics()
    private let droppedReported = LockedCounter()
    /// The metric buffers (nil before start).
    public private(set) var metricStore: MetricStore?

    /// Start-up progress (for `/readyz`) and cancellation (SIGTERM while starting).
    private let startup = StartupState()
    /// Called once when clusterd cannot go on (its embedded broker keeps dying): the caller
    /// stops the service and exits non-zero.
    public var onFatal: (@Sendable (String) -> Void)?

    /// A service for `config` (nothing starts before ``start()``).
    public init(config: ClusterdConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Makes a ``start()`` in progress give up at its next retry with ``StartCancelled``
    /// (SIGTERM during start-up must not wait for an unreachable broker).
    public func cancelStart() { startup.cancel() }

    /// ``start()`` was cancelled by ``cancelStart()``.
    public struct StartCancelled: Error, CustomStringConvertible {
        public var description: String { "start-up cancelled by a shutdown request" }
    }

    /// Opens the database (migrating it), installs cluster files, connects (starting a local
    /// nats-server when none is configured), sets up the stream and consumer, and starts the
    /// intake loop.
    public func start() throws {
        startup.phase("starting")
        // /healthz and /readyz answer from the first moment, so a stuck start-up is visible.
        startObservability()
        try FileManager.default.createDirectory(atPath: config.storage.dataDir, withIntermediateDirectories: true)
        var servers = config.nats.servers
        if servers.isEmpty {
            startup.phase("starting the embedded nats-server")
            let server = try startEmbedded()
            servers = [server.url]
        }
        startup.phase("opening the database")
        // The one read-write connection: every stage's transaction goes through it in turn.
        let writer = try DatabaseWriter(path: config.databasePath, busyTimeoutMilliseconds: Int32(config.storage.busyTimeoutMilliseconds))
        let database = writer.database
        let migrated = try writer.perform { try $0.migrate(Self.migrations) }
        logger.info("database ready", metadata: ["path": "\(config.databasePath)", "migrations_applied": "\(migrated)"])
        let archive = try ArchiveWriter(root: config.archivePath)
        for file in config.jobs.clusterFiles { try archive.install(try ClusterConfig(contentsOf: file)) }
        let loaded = try ClusterRegistry.load(archiveRoot: config.archivePath)
        let clusters = Reloadable(loaded)
        self.archive = archive
        self.clusters = clusters
        if loaded.clusters.isEmpty {
            logger.warning("no clusters known: every start_job will be dead-lettered until <archive>/<cluster>/cluster.json exists",
                           metadata: ["archive": "\(config.archivePath)"])
        } else {
            logger.info("clusters loaded", metadata: ["clusters": "\(loaded.clusters.keys.sorted().joined(separator: ","))"])
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
        startup.phase("setting up streams and consumers on \(servers.map(ClusterdConfig.redacted).joined(separator: ","))")

        let jobSource: any MessageSource
        let nodeSource: any MessageSource
        let intake = config.intake
        if intake.mode == "core" {
            logger.warning("core NATS intake: delivery is at-most-once; events published while clusterd is down are lost")
            jobSource = try CoreSource(connection: connection, config: config, subject: intake.jobSubject)
            nodeSource = try CoreSource(connection: connection, config: config, subject: intake.nodeStateSubject)
        } else {
            jobSource = try retrying("set up stream \(intake.stream)", connection: connection, servers: servers) {
                try ensureStream(JetStreamSource.stream(config), on: connection)
                return try JetStreamSource(connection: connection, config: config, consumer: intake.consumer, subject: intake.jobSubject,
                                           description: "clusterd job stage: ack after the SQLite commit")
            }
            nodeSource = try JetStreamSource(connection: connection, config: config, consumer: intake.nodeConsumer,
                                             subject: intake.nodeStateSubject, description: "clusterd node-state stage: ack after the SQLite commit")
            try ensureStream(StreamConfig(name: config.publish.deadLetterStream,
                                          description: "clusterd dead letters: every rejected line with its reason",
                                          subjects: ["\(config.publish.deadLetterPrefix).>"],
                                          duplicateWindow: .seconds(intake.duplicateWindowSeconds),
                                          maxAge: .seconds(intake.maxAgeDays * 86_400), replicas: intake.replicas), on: connection)
        }
        let store = try startMetricStore()
        let publisher = OutboxPublisher(writer: writer, connection: connection, logger: logger, counters: counters)
        let health = try startHealth(connection: connection, publisher: publisher, writer: writer, clusters: clusters)
        let jobs = JobProcessor(database: database, clusters: clusters, archive: archive, config: config,
                                counters: counters, logger: logger, onStopped: { health.submit(jobs: $0) })
        jobs.dataBuilder = JobDataBuilder(store: store)
        jobs.writer = writer
        let heldStopTimeout = Int64(config.jobs.heldStopTimeoutSeconds)
        let hourly = Every(seconds: 3600)
        loops.append(IntakeLoop(name: "jobs", source: jobSource, processor: jobs, writer: writer, publisher: publisher,
                                batch: intake.batch, counters: counters, logger: logger,
                                settle: { try jobs.archivePending() },
                                periodic: { [retentionDays = config.jobs.archiveRetentionDays] now in
                                    let expired = try jobs.expireHeldStops(now: now, timeout: heldStopTimeout)
                                    if expired > 0 { logger.warning("held stops expired", metadata: ["count": "\(expired)"]) }
                                    if hourly.due(now) { try jobs.applyRetention(now: now, days: retentionDays) }
                                }))
        // KV needs JetStream; in core mode the database and the query API are the view.
        if intake.mode != "core" { try NodeStateMirror.ensureBucket(connection: connection, replicas: intake.replicas) }
        let nodes = NodeProcessor(database: database, clusters: clusters, probe: MetricHealthProbe(store: store, clusters: clusters), config: config,
                                  counters: counters, logger: logger, mirrorsToKV: intake.mode != "core",
                                  onCommit: { observations in health.submit(nodes: observations) })
        let retention = Int64(config.nodes.historyRetentionHours) * 3600
        nodes.writer = writer
        loops.append(IntakeLoop(name: "nodes", source: nodeSource, processor: nodes, writer: writer, publisher: publisher,
                                batch: intake.batch, counters: counters, logger: logger,
                                periodic: { now in _ = try writer.perform { _ in try nodes.stage.prune(before: now - retention) } }))
        for loop in loops {
            loop.deadLetterRetention = Int64(config.publish.deadLetterRetentionDays) * 86_400
            loop.maxAttempts = max(1, config.intake.maxAttempts)
            loop.start()
        }
        let api = QueryAPI(database: try openReader(), clusters: clusters, health: health,
                           republish: { subject, body, headers in
                               // Through the outbox: the intake stream takes it like any publisher's message.
                               var rest = headers.compactMapValues(\.first)
                               let id = rest.removeValue(forKey: "Nats-Msg-Id") ?? "replay-\(ContentHash.hex(body))"
                               try publisher.enqueue([OutboxMessage(subject: subject, messageID: id, payload: body, headers: rest)])
                           })
        reader = try openReader()
        let fleet = try FleetService(connection: connection, writer: writer, publisher: publisher, config: config, counters: counters, logger: logger)
        self.fleet = fleet
        fleet.start()
        if !config.alertmanager.receivers.isEmpty && intake.mode == "core" {
            logger.warning("Alertmanager forwarding needs the JetStream alert stream; not forwarding in core mode")
        } else {
            for receiver in config.alertmanager.receivers {
                let forwarder = try AlertmanagerForwarder(receiver: receiver, connection: connection, config: config, counters: counters, logger: logger)
                forwarder.start()
                forwarders.append(forwarder)
            }
        }
        micro = try MicroService(connection: connection, name: "clusterd", version: Self.version,
                                 description: "clusterd query API: jobs, nodes, health, alerts, dead letters, fleet registry",
                                 endpoints: api.endpoints + fleet.endpoints
                                    + [JobAdmin(writer: writer, clusters: clusters).endpoint, reloadEndpoint]
                                    + (maintenance.map { [$0.endpoint] } ?? []))
        let topology = self.topology
        metricIntake = try MetricIntake(connection: connection, publisher: publisher, config: config, counters: counters, logger: logger, admit: { s in
            // As the job and node stages: a cluster needs its cluster.json.
            let clusters = clusters.current
            guard let cluster = clusters[s.cluster] else {
                let known = clusters.clusters.keys.sorted().joined(separator: ", ")
                return ("unknown_cluster", "cluster \"\(s.cluster)\" is unknown (known: \(known.isEmpty ? "none" : known)); add <archive>/\(s.cluster)/cluster.json")
            }
            // A host the cluster.json or the topology lists has the full budget; others a small one.
            let known = topology.current.placement(of: s.hostname) != nil || cluster.subCluster(named: "", forHost: s.hostname) != nil
            // Admitted and written in one step; what is kept goes on to the health loop.
            return store.record(s.seriesKey, time: s.time, value: s.value, knownHost: known).map { ("series_limit", $0) }
        }) { samples, at in
            health.submit(samples: samples, receivedAt: at)
        }
        startup.phase(nil)
        logger.notice("clusterd running", metadata: ["mode": "\(config.intake.mode)", "nats": "\(servers.map(ClusterdConfig.redacted).joined(separator: ","))",
                                                    "subject": "\(config.intake.jobSubject)"])
    }

    /// Starts the embedded nats-server (port `nats.embedded_port`, another free one when that
    /// is taken) and watches it: an exit nobody asked for is logged as an error and the
    /// server restarted on the same port and store; a server that dies five times within a
    /// minute is fatal (``onFatal``).
    private func startEmbedded() throws -> NATSServer {
        let wanted = config.nats.embeddedPort
        let server = try NATSServer(directory: URL(fileURLWithPath: config.storage.dataDir).appendingPathComponent("nats"),
                                    port: wanted, fallbackToFreePort: true)
        embedded = server
        if wanted != 0 && server.port != wanted {
            logger.warning("port \(wanted) is taken: the embedded nats-server listens on another port; point clients at it",
                           metadata: ["url": "\(server.url)"])
        }
        logger.notice("no NATS server configured: started a local nats-server with JetStream; clients connect to \(server.url)",
                      metadata: ["url": "\(server.url)", "pid": "\(server.processIdentifier ?? 0)", "store": "\(server.directory.path)"])
        let logger = self.logger
        let counters = self.counters
        let restarts = RestartBudget(limit: 5, window: 60)
        server.onUnexpectedExit = { [weak self, weak server] status, tail in
            counters.add("nats.embedded_exits")
            logger.error("the embedded nats-server exited unexpectedly", metadata: ["status": "\(status)", "log": "\(tail)"])
            guard let self, let server, !self.startup.isCancelled else { return }
            guard restarts.allow() else {
                self.onFatal?("the embedded nats-server exited 5 times within a minute (last status \(status)): \(tail)")
                return
            }
            do {
                try server.start()
                logger.warning("embedded nats-server restarted", metadata: ["url": "\(server.url)", "pid": "\(server.processIdentifier ?? 0)"])
            } catch {
                self.onFatal?("the embedded nats-server exited (status \(status)) and does not start again: \(error)")
            }
        }
        return server
    }

    /// Finishes the batch in flight, then closes the connection and the embedded server.
    public func stop() {
        http?.stop()
        http = nil
        micro?.stop()
        micro = nil
        fleet?.stop()
        fleet = nil
        for f in forwarders { f.stop() }
        forwarders = []
        maintenance = nil
        metricIntake?.stop()
        metricIntake = nil
        for loop in loops { loop.stop() }
        loops = []
        health?.stop()
        health = nil
        checkpointer?.stop()
        checkpointer = nil
        if let store = metricStore { checkpoint(store) }
        connection?.close()
        connection = nil
        embedded?.stop()
        embedded = nil
        logger.info("clusterd stopped")
    }

    /// Every table clusterd keeps.
    public static let migrations = Outbox.migrations + PipelineSchema.migrations + JobSchema.migrations + NodeSchema.migrations
        + AlertSchema.migrations + FleetSchema.migrations

    /// `/metrics`, `/healthz`, `/readyz` on `observability.listen`. A failure to bind is
    /// logged and counted; clusterd runs on without it.
    private func startObservability() {
        let listen = config.observability.listen
        guard !listen.isEmpty, let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else { return }
        do {
            let server = try ObservabilityServer(host: String(listen[..<colon]), port: port) { [weak self] request in
                guard let self else { return (503, "text/plain", Array("stopping\n".utf8)) }
                switch request.path {
                case "/metrics": return (200, "text/plain; version=0.0.4; charset=utf-8", self.scrape())
                case "/healthz": return (200, "text/plain", Array("ok\n".utf8))
                case "/readyz":
                    let problems = self.readiness()
                    guard problems.isEmpty else { return (503, "text/plain", Array((problems.joined(separator: "\n") + "\n").utf8)) }
                    // Ready, but parked messages want an operator's look (they never block anything).
                    let parked = (try? self.reader?.prepare("SELECT count(*) FROM outbox_parked").first { $0.int(0) }) ?? 0
                    return (200, "text/plain", Array("ready\n\(parked > 0 ? "note: \(parked) outbox messages parked (clusterd dlq parked)\n" : "")".utf8))
                default: return (404, "text/plain", Array("try /metrics, /healthz or /readyz\n".utf8))
                }
            }
            server.start()
            http = server
            logger.info("observability endpoint ready", metadata: ["url": "http://\(listen[..<colon]):\(server.port)/metrics"])
        } catch {
            counters.add("observability.bind_errors")
            logger.error("observability endpoint not started; clusterd runs on", metadata: ["error": "\(error)"])
        }
    }

    /// What keeps clusterd from being ready; empty when ready.
    func readiness() -> [String] {
        var problems: [String] = []
        // During start-up the parts below are being assigned on the starting thread.
        if let phase = startup.currentPhase { return ["starting: \(phase)"] }
        if connection?.isConnected != true { problems.append("not connected to NATS") }
        if loops.isEmpty || health == nil { problems.append("intake and health loops not running") }
        if (try? reader?.prepare("SELECT count(*) FROM schema_migration").first { $0.int(0) }) == nil { problems.append("database not readable") }
        if let reader, let failing = try? JobStage.archiveFailures(in: reader), failing.count > 0 {
            problems.append("\(failing.count) job archive entries cannot be written, retrying (last error: \(failing.lastError ?? "?"))")
        }
        if config.intake.mode != "core", let connection {
            for consumer in [config.intake.consumer, config.intake.nodeConsumer] {
                if (try? JetStream(connection, timeout: .seconds(1)).consumerLag(stream: config.intake.stream, consumer: consumer)) == nil {
                    problems.append("consumer \(consumer) on \(config.intake.stream) not reachable")
                }
            }
        }
        return problems
    }

    /// The Prometheus exposition: counters and histograms as they move, gauges read now.
    func scrape() -> [UInt8] {
        let registry = counters.registry
        if startup.currentPhase != nil { return registry.emitToBuffer() }  // parts not assigned yet
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "clusterd", metricName: name, unitName: "", helpText: help), labels: labels)
        }
        processMetrics.collect(into: registry)
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "clusterd", metricName: "build_info", unitName: "",
                                                            helpText: "clusterd's version (the value is always 1)"),
                           labels: [("version", Self.version)]).set(Int64(1))
        gauge("nats_connected", "1 while connected to NATS").set(Int64(connection?.isConnected == true ? 1 : 0))
        if let store = metricStore {
            let usage = store.usage
            gauge("metric_series", "metric series buffered").set(Int64(usage.series))
            gauge("metric_buffer_bytes", "bytes of buffered samples").set(Int64(usage.sampleBytes))
            // A counter (clusterd_metrics_samples_dropped_total): the store counts from its start.
            let dropped = usage.dropped - droppedReported.exchange(usage.dropped)
            if dropped > 0 { counters.add("metrics.samples_dropped", dropped) }
        }
        if let reader {
            let firing = (try? reader.prepare("SELECT severity, count(*) FROM alert WHERE status = 'firing' GROUP BY severity")
                .rows { ($0.text(0), $0.int(1)) }) ?? []
            for severity in ["CRIT", "WARN", "UNKNOWN"] {
                gauge("alerts_firing", "alerts firing now", [("severity", severity.lowercased())])
                    .set(firing.first { $0.0 == severity }?.1 ?? 0)
            }
            if let failing = try? JobStage.archiveFailures(in: reader) {
                gauge("archive_failing", "job archive entries that could not be written and wait for a retry").set(Int64(failing.count))
            }
            let pending: Int64? = try? reader.prepare("SELECT count(*) FROM outbox").first { $0.int(0) } ?? 0
            if let pending { gauge("outbox_pending", "committed messages not yet published").set(pending) }
            let parked: Int64? = try? reader.prepare("SELECT count(*) FROM outbox_parked").first { $0.int(0) } ?? 0
            if let parked {
                gauge("outbox_parked", "messages larger than the broker takes, kept in the outbox_parked table").set(parked)
            }
        }
        if config.intake.mode != "core", let connection, let js = try? JetStream(connection, timeout: .seconds(1)) {
            for consumer in [config.intake.consumer, config.intake.nodeConsumer] {
                guard let lag = try? js.consumerLag(stream: config.intake.stream, consumer: consumer) else { continue }
                gauge("consumer_pending", "stream messages not yet delivered to the consumer (lag)", [("consumer", consumer)]).set(Int64(lag.pending))
                gauge("consumer_ack_pending", "messages delivered, not yet acknowledged", [("consumer", consumer)]).set(lag.ackPending)
            }
        }
        return registry.emitToBuffer()
    }

    /// The metric buffers, restored from the last checkpoint, with a thread that writes a
    /// checkpoint every `metrics.checkpoint_interval_seconds`.
    private func startMetricStore() throws -> MetricStore {
        let settings = config.metrics
        let store = MetricStore(resolution: Int64(settings.resolutionSeconds), retention: Int64(settings.retentionHours) * 3600,
                                limits: .init(total: settings.maxSeries, perCluster: settings.maxSeriesPerCluster, unknownHosts: settings.maxUnknownHostSeries))
        do {
            let restored = try store.restore(from: config.metricCheckpointPath, now: Int64(Date().timeIntervalSince1970))
            logger.info("metric buffers ready", metadata: ["series_restored": "\(restored)", "resolution_s": "\(store.resolution)",
                                                          "slots_per_series": "\(store.capacity)",
                                                          "bytes_per_series": "\(store.capacity * MetricStore.bytesPerSample)"])
        } catch {
            logger.warning("metric checkpoint not restored; starting empty", metadata: ["error": "\(error)"])
        }
        metricStore = store
        let worker = WorkerThread()
        let interval = Double(settings.checkpointIntervalSeconds)
        worker.start(name: "clusterd-checkpoint") { [self] in
            var last = Date()
            while !worker.isStopping {
                Thread.sleep(forTimeInterval: 0.2)
                if Date().timeIntervalSince(last) >= interval {
                    last = Date()
                    checkpoint(store)
                }
            }
        }
        checkpointer = worker
        return store
    }

    private func checkpoint(_ store: MetricStore) {
        let started = Date()
        do {
            try store.checkpoint(to: config.metricCheckpointPath)
            counters.add("metrics.checkpoints")
            logger.debug("metric checkpoint written", metadata: ["series": "\(store.usage.series)",
                                                                 "seconds": "\(Date().timeIntervalSince(started))"])
        } catch {
            counters.add("metrics.checkpoint_errors")
            logger.error("metric checkpoint failed", metadata: ["error": "\(error)"])
        }
    }

    /// Loads topology and checks, restores firing alerts and the black-hole window, ensures
    /// the alert stream, and starts the health loop and the maintenance admin API.
    private func startHealth(connection: BusConnection, publisher: OutboxPublisher, writer: DatabaseWriter,
                             clusters: Reloadable<ClusterRegistry>) throws -> HealthLoop {
        let settings = config.health
        let topology = try settings.topology.map { try Topology(contentsOf: $0) } ?? Topology()
        let library = try settings.checks.map { try CheckLibrary(contentsOf: $0) } ?? CheckLibrary([])
        if library.checks.isEmpty { logger.warning("no checks configured (health.checks): nothing is evaluated, no alert is raised") }
        if config.intake.mode != "core" {
            try ensureStream(StreamConfig(
                name: settings.alertStream, description: "clusterd alerts: every firing and resolved transition, sequenced",
                subjects: ["\(settings.alertPrefix).>"], duplicateWindow: .seconds(config.intake.duplicateWindowSeconds),
                maxAge: .seconds(config.intake.maxAgeDays * 86_400), replicas: config.intake.replicas), on: connection)
        }
        let now = Int64(Date().timeIntervalSince1970)
        let engine = HealthEngine(library: library, topology: topology, now: now)
        let database = writer.database
        let book = AlertBook(database: database, prefix: settings.alertPrefix, resendInterval: Int64(settings.resendIntervalSeconds))
        writer.lock.lock()
        defer { writer.lock.unlock() }
        let restored = try book.restore()
        engine.restore(restored)
        // Hosts that reported before this start (node records, buffered metrics) are expected
        // to report again; silence checks leave every other topology host alone.
        let reported = try database.prepare("SELECT hostname, cluster FROM node").rows([]) { ($0.text(0), $0.text(1)) }
        for (host, cluster) in reported { engine.expect(host: host, cluster: cluster) }
        for host in metricStore?.hosts ?? [] { engine.expect(host: host.host, cluster: host.cluster) }
        let window = library.checks.compactMap { check -> Int64? in
            if case .jobExits(_, _, let w, _, _, _) = check.source { return w }
            return nil
        }.max()
        if let window {
            for job in try JobStage(database: database, clusters: clusters.current).ended(since: now - window) {
                engine.jobEnded(HealthLoop.exit(job), now: now)
            }
        }
        logger.info("health evaluation ready", metadata: ["checks": "\(library.checks.count)", "hosts_in_topology": "\(topology.hosts.count)",
                                                          "firing_alerts_restored": "\(restored.count)"])
        let loop = HealthLoop(engine: engine, book: book, writer: writer, publisher: publisher,
                              interval: .milliseconds(settings.evaluationIntervalMilliseconds), counters: counters, logger: logger)
        loop.historyRetention = Int64(settings.historyRetentionDays) * 86_400
        health = loop
        loop.start()
        self.topology.replace(with: topology)
        maintenance = try MaintenanceResponder(writer: writer, topology: self.topology,
                                               connection: connection, logger: logger)
        return loop
    }

    /// Creates `stream` when missing; an existing one keeps its settings, and the log says
    /// which of them differ from clusterd's configuration.
    func ensureStream(_ stream: StreamConfig, on connection: BusConnection) throws {
        let kept = try JetStream(connection).ensureStream(stream)
        if !kept.isEmpty {
            logger.notice("stream \(stream.name) exists: its own settings are kept", metadata: ["kept": "\(kept.joined(separator: "; "))"])
        }
    }

    /// A read-only connection (the query API, /readyz and /metrics read beside the writer).
    func openReader() throws -> Database {
        try Database(path: config.databasePath, busyTimeoutMilliseconds: Int32(config.storage.busyTimeoutMilliseconds), readOnly: true)
    }

    /// Retries `body` until it succeeds (the broker may come up after clusterd, or a
    /// JetStream leader election may take seconds), until ``cancelStart()``. While not
    /// connected, the log names the servers and libnats' own reason instead of a bare timeout.
    func retrying<T>(_ what: String, connection: BusConnection, servers: [String], _ body: () throws -> T) throws -> T {
        var delay = 0.25
        while true {
            if startup.isCancelled { throw StartCancelled() }
            do {
                // Not connected, a JetStream request would only wait out its timeout (5 s)
                // in libnats' buffer, deaf to a SIGTERM meanwhile: wait for the connection here.
                guard connection.isConnected else { throw NotConnectedYet() }
                return try body()
            } catch {
                var metadata: Logger.Metadata = ["error": "\(error)", "nats": "\(servers.map(ClusterdConfig.redacted).joined(separator: ","))", "in_seconds": "\(delay)"]
                if !connection.isConnected {
                    let login = BrokerProbe.Credentials(user: config.nats.user, password: config.nats.password, token: config.nats.token)
                    let reasons = servers.map { server in
                        "\(ClusterdConfig.redacted(server)): \(BrokerProbe.problem(url: server, credentials: login) ?? connection.lastError ?? "reachable, but the NATS connection is not up (TLS or credentials?)")"
                    }
                    metadata["error"] = "not connected to NATS at \(reasons.joined(separator: "; "))"
                }
                logger.warning("\(what) failed; retrying", metadata: metadata)
                let until = Date().addingTimeInterval(delay)
                while Date() < until && !startup.isCancelled { Thread.sleep(forTimeInterval: 0.05) }
                delay = min(delay * 2, 5)
            }
        }
    }
}

/// What start-up is doing now, and whether it was asked to give up.
final class StartupState: @unchecked Sendable {
    private let lock = NSLock()
    private var _phase: String?
    private var cancelled = false

    func phase(_ p: String?) { lock.withLock { _phase = p } }
    var currentPhase: String? { lock.withLock { _phase } }
    func cancel() { lock.withLock { cancelled = true } }
    var isCancelled: Bool { lock.withLock { cancelled } }
}

/// The broker connection is not up (yet): nothing was attempted.
struct NotConnectedYet: Error {}

/// At most `limit` events within `window` seconds.
final class RestartBudget: @unchecked Sendable {
    private let lock = NSLock()
    private var times: [Date] = []
    private let limit: Int
    private let window: TimeInterval

    init(limit: Int, window: TimeInterval) {
        self.limit = limit
        self.window = window
    }

    /// Records one event; false when it is one too many.
    func allow() -> Bool {
        lock.withLock {
            let now = Date()
            times = times.filter { now.timeIntervalSince($0) < window } + [now]
            return times.count <= limit
        }
    }
}

/// An integer behind a lock.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    /// Sets the value; returns the previous one.
    func exchange(_ new: Int) -> Int { lock.withLock { defer { value = new }; return value } }
}
