import Alerts
import API
import Archive
import Audit
import Bus
import Config
import Fleet
import Foundation
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
import Replication
import Store
import Threads

/// The composition root: from a configuration, the database (one writer), archive, optional
/// embedded nats-server, the connection and every long-running part (``parts``).
public final class ClusterdService: @unchecked Sendable {
    /// The effective configuration.
    public let config: ClusterdConfig
    /// What happened so far.
    public let counters = PipelineCounters()
    let logger: Logger
    var embedded: NATSServer?
    var connection: BusConnection?
    /// The long-running parts, in start order (stopped in reverse).
    public internal(set) var parts: [ServicePart] = []
    var loops: [IntakeLoop] = []
    var health: HealthLoop?
    var maintenance: MaintenanceResponder?
    var http: ObservabilityServer?
    var reader: Database?
    /// What a configuration reload replaces: the clusters, the topology (see ``reload(origin:)``).
    var clusters = Reloadable(ClusterRegistry([]))
    let topology = Reloadable(Topology())
    /// Metric names some check looks at (replaced with the checks): the metric path hands
    /// only their values to the health loop, and of other series only which hosts reported.
    let watchedMetrics = Reloadable(Set<String>())
    var archive: ArchiveWriter?
    /// The one read-write connection (nil before start).
    public internal(set) var writer: DatabaseWriter?
    /// The publisher lease when this clusterd is one of several replicas (`ha.instance`).
    public internal(set) var lease: PublisherLease?
    let reloading = NSLock()
    /// The port of `/metrics`, `/healthz`, `/readyz` (nil when off or not bound).
    public var observabilityPort: UInt16? { http?.port }
    /// clusterd's version, as the micro service reports it.
    public static let version = "0.4.0"
    /// Runs the periodic chores: held-stop expiry, retention, pruning, checkpoints (its clock
    /// is injectable, so tests move time instead of waiting for it).
    public let scheduler: Scheduler
    let processMetrics = ProcessMetrics()
    let droppedReported = LockedCounter()
    let writerBusyReported = LockedCounter()
    /// The metric buffers (nil before start).
    public internal(set) var metricStore: MetricStore?

    /// Start-up progress (for `/readyz`) and cancellation (SIGTERM while starting).
    let startup = StartupState()
    /// Called once when clusterd cannot go on (its embedded broker keeps dying): the caller
    /// stops the service and exits non-zero.
    public var onFatal: (@Sendable (String) -> Void)?

    /// A service for `config` (nothing starts before ``start()``); `clock` is the chores'
    /// time (a ``ManualClock`` in tests).
    public init(config: ClusterdConfig, logger: Logger, clock: any SchedulerClock = SystemClock()) {
        self.config = config
        self.logger = logger
        // A quarter second: one-second tasks (fleet polls) run close to their interval.
        scheduler = Scheduler(clock: clock, resolution: 0.25)
    }

    /// Makes a ``start()`` in progress give up at its next retry with ``StartCancelled``
    /// (SIGTERM during start-up must not wait for an unreachable broker).
    public func cancelStart() { startup.cancel() }

    /// ``start()`` was cancelled by ``cancelStart()``.
    public struct StartCancelled: Error, CustomStringConvertible {
        public var description: String { "start-up cancelled by a shutdown request" }
    }

    /// Builds everything (``prepare()``) and starts every part.
    public func start() throws {
        try prepare()
        for part in parts { part.start() }
    }

    /// Opens the database (migrating it), installs cluster files, connects (starting a local
    /// nats-server when none is configured), sets up streams and consumers and builds every
    /// long-running part (``parts``) without starting it.
    public func prepare() throws {
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
        let writer = try DatabaseWriter(path: config.databasePath, busyTimeoutMilliseconds: Int32(clamping: config.storage.busyTimeout.wholeMilliseconds))
        self.writer = writer
        let database = writer.database
        let migrated = try writer.perform { try $0.migrate(Self.migrations) }
        logger.info("database ready", metadata: ["path": "\(config.databasePath)", "migrations_applied": "\(migrated)"])
        // The log is copied into the database file on a thread of its own; the writer does it
        // only when that thread falls behind. The first of the parts, so stopped last.
        let checkpointer = try WALCheckpointer(path: config.databasePath) { [logger] error in
            if let error {
                logger.error("checkpointing the database's log failed; retried every 100 ms, and the writer checkpoints by itself past \(WALCheckpointer.writerPages) pages",
                             metadata: ["error": "\(error)"])
            } else {
                logger.notice("checkpointing the database's log works again")
            }
        }
        try writer.perform { try $0.execute("PRAGMA wal_autocheckpoint=\(WALCheckpointer.writerPages)") }
        parts.append(ServicePart("log checkpointer", start: checkpointer.start, stop: checkpointer.stop))
        let archive = try ArchiveWriter(root: config.archivePath, database: config.archiveDatabasePath)
        for file in config.jobs.clusterFiles { try archive.install(try ClusterConfig(contentsOf: file)) }
        let loaded = try archive.clusters()
        let clusters = Reloadable(loaded)
        self.archive = archive
        self.clusters = clusters
        if loaded.clusters.isEmpty {
            logger.warning("no clusters known: every start_job will be dead-lettered until <archive>/<cluster>/cluster.json exists",
                           metadata: ["archive": "\(config.archivePath)"])
        } else {
            logger.info("clusters loaded", metadata: ["clusters": "\(loaded.clusters.keys.sorted().joined(separator: ","))",
                                                      "archive": "\(archive.database.map { "sqlite \($0.path)" } ?? "tree \(archive.root)")"])
        }

        var options = config.nats.connection
        options.servers = servers
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
        if intake.mode == .core {
            logger.warning("core NATS intake: delivery is at-most-once; events published while clusterd is down are lost")
            jobSource = try CoreSource(connection: connection, config: config, subject: intake.jobSubject)
            nodeSource = try CoreSource(connection: connection, config: config, subject: intake.nodeStateSubject)
        } else {
            jobSource = try retrying("set up stream \(intake.stream)", connection: connection, servers: servers) {
                try ensureStream(JetStreamSource.stream(config), on: connection)
                return try JetStreamSource(connection: connection, config: config, consumer: config.jobConsumer, subject: intake.jobFilter,
                                           description: "clusterd job stage: ack after the SQLite commit")
            }
            nodeSource = try JetStreamSource(connection: connection, config: config, consumer: config.nodeConsumer,
                                             subject: intake.nodeStateFilter, description: "clusterd node-state stage: ack after the SQLite commit")
            try ensureStream(StreamConfig(name: config.publish.deadLetterStream,
                                          description: "clusterd dead letters: every rejected line with its reason",
                                          subjects: ["\(config.publish.deadLetterPrefix).>"],
                                          duplicateWindow: intake.duplicateWindow,
                                          maxAge: intake.maxAge, replicas: intake.replicas), on: connection)
        }
        let store = try startMetricStore()
        let publisher = OutboxPublisher(writer: writer, connection: connection, logger: logger, counters: counters)
        if config.ha.isReplicated {
            var settings = PublisherLease.Settings(bucket: config.ha.leaseBucket, instance: config.ha.instance,
                                                   ttl: config.ha.leaseTTL, replicas: intake.replicas)
            settings.key = config.leaseKey
            let lease = PublisherLease(connection: connection, settings: settings,
                                       counters: counters, logger: logger) { held in
                // What queued while standing by (and is younger than ha.standby_outbox_seconds)
                // goes out now; the streams drop what the previous publisher already sent.
                if held { _ = try? publisher.drain() }
            }
            try retrying("set up the lease bucket \(config.ha.leaseBucket)", connection: connection, servers: servers) {
                try lease.ensureBucket()
                try checkReplicas(of: "KV_\(config.ha.leaseBucket)", "the KV bucket \(config.ha.leaseBucket)", on: connection)
            }
            publisher.publishes = { lease.isHeld }
            publisher.standbyKeep = config.ha.standbyOutbox
            self.lease = lease
            // Stopped after every part but the checkpointer: the last batches' messages go out before it is released.
            parts.append(ServicePart("publisher lease", start: lease.start, stop: lease.stop))
        }
        let health = try startHealth(connection: connection, publisher: publisher, writer: writer, clusters: clusters)
        let jobs = JobProcessor(database: database, clusters: clusters, archive: archive, config: config,
                                counters: counters, logger: logger, onStopped: { health.submit(jobs: $0) })
        var fallback: (@Sendable (String, String, Int64, Int64, Int64) -> [Float]?)?
        if !config.metrics.prometheusURL.isEmpty {
            let source = PrometheusSource(url: config.metrics.prometheusURL, queries: config.metrics.prometheusQueries, counters: counters, logger: logger)
            fallback = { metric, host, from, to, step in source.values(metric: metric, host: host, from: from, to: to, step: step) }
        }
        jobs.dataBuilder = JobDataBuilder(store: store, counters: Set(config.metrics.counters), fallback: fallback)
        jobs.writer = writer
        let heldStopTimeout = config.jobs.heldStopTimeout.wholeSeconds
        // Started before the intake loops and stopped after them (parts stop in reverse):
        // the last batch's entries are written.
        let archiver = ArchiveWorker(jobs: jobs, publisher: publisher, logger: logger)
        parts.append(ServicePart("archive worker", start: archiver.start, stop: archiver.stop))
        loops.append(IntakeLoop(name: "jobs", source: jobSource, processor: jobs, writer: writer, publisher: publisher,
                                batch: intake.batch, counters: counters, logger: logger,
                                settle: { archiver.kick() },
                                periodic: { now in
                                    let expired = try jobs.expireHeldStops(now: now, timeout: heldStopTimeout)
                                    if expired > 0 { logger.warning("held stops expired", metadata: ["count": "\(expired)"]) }
                                }))
        scheduler.every(3600, "jobs.retention") { [keep = config.jobs.archiveRetention] now in
            do { try jobs.applyRetention(now: now, keep: keep) } catch {
                logger.error("archive retention failed; retried in an hour", metadata: ["error": "\(error)"])
            }
        }
        // KV needs JetStream; in core mode the database and the query API are the view.
        if intake.mode != .core {
            try NodeStateMirror.ensureBucket(connection: connection, replicas: intake.replicas)
            try checkReplicas(of: "KV_\(NodeStateMirror.bucket)", "the KV bucket \(NodeStateMirror.bucket)", on: connection)
        }
        let nodes = NodeProcessor(database: database, clusters: clusters, probe: MetricHealthProbe(store: store, clusters: clusters), config: config,
                                  counters: counters, logger: logger, mirrorsToKV: intake.mode != .core,
                                  onCommit: { observations in health.submit(nodes: observations) })
        let retention = config.nodes.historyRetention.wholeSeconds
        nodes.writer = writer
        loops.append(IntakeLoop(name: "nodes", source: nodeSource, processor: nodes, writer: writer, publisher: publisher,
                                batch: intake.batch, counters: counters, logger: logger,
                                periodic: { now in _ = try writer.perform { _ in try nodes.stage.prune(before: now - retention) } }))
        for loop in loops {
            loop.deadLetterRetention = config.publish.deadLetterRetention.wholeSeconds
            loop.maxAttempts = max(1, config.intake.maxAttempts)
            scheduler.every(10, "\(loop.name).chores") { now in loop.chores(now: now) }
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
        // HTTP checks wait on their timeouts: a lane of their own, the chores never wait.
        scheduler.every(config.fleet.checkInterval.wholeSeconds, "fleet.poll", ownLane: true) { _ in fleet.pollOnce() }
        scheduler.every(3600, "fleet.prune") { now in fleet.prune(now: now) }
        if !config.alertmanager.receivers.isEmpty && intake.mode == .core {
            logger.warning("Alertmanager forwarding needs the JetStream alert stream; not forwarding in core mode")
        } else {
            for receiver in config.alertmanager.receivers {
                let forwarder = try AlertmanagerForwarder(receiver: receiver, connection: connection, config: config, counters: counters, logger: logger)
                if let lease { forwarder.forwards = { lease.isHeld } }
                parts.append(ServicePart("alertmanager \(receiver.name)", start: forwarder.start, stop: forwarder.stop))
            }
        }
        let quota = ArchiveQuota(config.jobs)
        // Evictions a crash interrupted are finished before the archive is read or measured.
        do { try jobs.finishEvictions() } catch {
            logger.error("interrupted archive evictions not finished; retried before the next eviction", metadata: ["error": "\(error)"])
        }
        var endpoints = api.endpoints + fleet.endpoints + [JobAdmin(writer: writer, clusters: clusters).endpoint, reloadEndpoint,
                                                           ArchiveEvictAdmin(jobs: jobs, quota: quota).endpoint]
            + (maintenance.map { [$0.endpoint] } ?? [])
        if quota.isSet && config.jobs.archiveQuotaInterval > .zero {
            scheduler.every(config.jobs.archiveQuotaInterval.wholeSeconds, "jobs.archive_quota") { now in
                do { _ = try jobs.evict(quota, dryRun: false, by: "archive quota", now: now) } catch {
                    logger.error("archive quota pass failed; retried at the next pass", metadata: ["error": "\(error)"])
                }
            }
        }
        // Replicas: what changes a replica's tables (admin actions, the fleet registry) is run
        // by every replica and answered by the publishing one; queries go to any one replica.
        for i in endpoints.indices where AuditedEndpoints.isAdministrative(endpoints[i]) {
            endpoints[i].everyReplica = true
        }
        endpoints = AuditedEndpoints(writer: writer, publisher: publisher, logger: logger, prefix: config.publish.auditPrefix).wrap(endpoints)
        scheduler.every(3600, "audit.retention") { [keep = config.publish.auditRetention.wholeSeconds] now in
            do { _ = try writer.perform { try AuditLog($0).prune(before: now - keep) } } catch {
                logger.error("audit retention failed; retried in an hour", metadata: ["error": "\(error)"])
            }
        }
        var answers: (@Sendable () -> Bool)?
        if let lease { answers = { lease.isHeld } }
        let micro = try MicroService(connection: connection, name: "clusterd", version: Self.version,
                                 description: "clusterd query API: jobs, nodes, health, alerts, dead letters, fleet registry",
                                 endpoints: endpoints, answers: answers)
        let topology = self.topology, watched = watchedMetrics, owned = Set(intake.clusters)
        let metricIntake = try MetricIntake(connection: connection, publisher: publisher, config: config, counters: counters, logger: logger,
                                            store: store, admissionVersion: { clusters.version &+ topology.version &+ watched.version },
                                            watches: { watched.current.contains($0.name) }, admit: { s in
            // Another instance's cluster (intake.clusters), sent on this one's subject.
            if !owned.isEmpty && !owned.contains(s.cluster) {
                return .failure(.init(code: "not_owned",
                                      reason: "cluster \"\(s.cluster)\" belongs to another clusterd instance (this one owns \(owned.sorted().joined(separator: ", "))); publish its lines on its own subject"))
            }
            // As the job and node stages: a cluster needs its cluster.json.
            let clusters = clusters.current
            guard let cluster = clusters[s.cluster] else {
                let known = clusters.clusters.keys.sorted().joined(separator: ", ")
                return .failure(.init(code: "unknown_cluster",
                                      reason: "cluster \"\(s.cluster)\" is unknown (known: \(known.isEmpty ? "none" : known)); add <archive>/\(s.cluster)/cluster.json"))
            }
            // A host the cluster.json or the topology lists has the full budget; others a small one.
            let known = topology.current.placement(of: s.hostname) != nil || cluster.subCluster(named: "", forHost: s.hostname) != nil
            return store.admit(s.seriesKey, knownHost: known).mapError { .init(code: "series_limit", reason: $0.reason) }
        }) { out, at in
            health.submit(new: out.new, samples: out.watched, reported: out.reported, lines: out.samples.count, receivedAt: at)
        }
        // Subscribed from their construction: as parts they are stopped in order (the parts
        // hold them).
        parts.append(ServicePart("metric subscription", stop: metricIntake.stop))
        parts.append(ServicePart("fleet subscriptions", stop: fleet.stop))
        parts.append(ServicePart("micro service endpoints", stop: micro.stop))
        parts.append(ServicePart("scheduler", start: scheduler.start, stop: scheduler.stop))
        // The intakes are the last part, so a graceful shutdown stops them first — all at once,
        // each after its batch in flight: no new work is taken while the rest stops. (Stopped
        // one after another behind the other parts, the job intake had applied a whole
        // stream's tail on a loaded machine while the node intake's idle fetch ran out.)
        let intakes = loops
        parts.append(ServicePart("intakes", start: { for loop in intakes { loop.start() } }, stop: {
            for loop in intakes { loop.requestStop() }
            for loop in intakes { loop.stop() }
        }))
        startup.phase(nil)
        logger.notice("clusterd running", metadata: ["mode": "\(config.intake.mode)", "nats": "\(servers.map(ClusterdConfig.redacted).joined(separator: ","))",
                                                    "subject": "\(config.intake.jobSubject)"])
    }

    /// Stops every part in reverse order (the batch in flight finishes), writes the metric
    /// checkpoint, closes the connection and the embedded server.
    public func stop() {
        for part in parts.reversed() { part.stop() }
        parts = []
        http?.stop()
        http = nil
        maintenance = nil
        loops = []
        health = nil
        if let store = metricStore { checkpoint(store) }
        connection?.close()
        connection = nil
        embedded?.stop()
        embedded = nil
        logger.info("clusterd stopped")
    }

    /// Every table clusterd keeps.
    public static let migrations = Outbox.migrations + PipelineSchema.migrations + JobSchema.migrations + NodeSchema.migrations
        + AlertSchema.migrations + FleetSchema.migrations + AuditLog.migrations

    /// Creates `stream` when missing; an existing one keeps its settings, and the log says
    /// which of them differ from clusterd's configuration.
    func ensureStream(_ stream: StreamConfig, on connection: BusConnection) throws {
        try checkReplicas(of: stream.name, "stream \(stream.name)", on: connection)
        let kept = try JetStream(connection).ensureStream(stream)
        if !kept.isEmpty {
            logger.notice("stream \(stream.name) exists: its own settings are kept", metadata: ["kept": "\(kept.joined(separator: "; "))"])
        }
    }

    /// Fewer replicas than `intake.replicas` on an existing stream (a KV bucket is one) is not
    /// the high availability the operator configured: said plainly instead of running on it
    /// (more is the operator's stronger choice).
    func checkReplicas(of stream: String, _ what: String, on connection: BusConnection) throws {
        let wanted = config.intake.replicas
        guard let existing = try? JetStream(connection).streamSettings(stream), existing.replicas < wanted else { return }
        throw Mismatch(description: "\(what) exists with \(existing.replicas) replica(s), fewer than intake.replicas (\(wanted)): "
                       + "raise them (nats stream edit \(stream) --replicas \(wanted)) or set intake.replicas: \(existing.replicas)")
    }

    /// What the broker has contradicts the configuration: start-up stops instead of retrying.
    struct Mismatch: Error, CustomStringConvertible {
        let description: String
    }

    /// A read-only connection (the query API, /readyz and /metrics read beside the writer).
    func openReader() throws -> Database {
        try Database(path: config.databasePath, busyTimeoutMilliseconds: Int32(clamping: config.storage.busyTimeout.wholeMilliseconds), readOnly: true)
    }

}
