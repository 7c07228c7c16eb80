import Alerts
import API
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
import Store
import Threads

/// The metric buffers and their checkpoints, and the health loop with its alert book.
extension ClusterdService {
    /// The metric buffers, restored from the last checkpoint, with a thread that writes a
    /// checkpoint every `metrics.checkpoint_interval_seconds`.
    func startMetricStore() throws -> MetricStore {
        let settings = config.metrics
        let store = MetricStore(resolution: settings.resolution.wholeSeconds, retention: settings.retention.wholeSeconds,
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
        // Not at once: the checkpoint just restored is current.
        let started = scheduler.clock.now()
        scheduler.every(settings.checkpointInterval.wholeSeconds, "metrics.checkpoint") { [weak self] now in
            if now > started { self?.checkpoint(store) }
        }
        return store
    }

    func checkpoint(_ store: MetricStore) {
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
    /// the alert stream, and builds the health loop (a part) and the maintenance admin API.
    func startHealth(connection: BusConnection, publisher: OutboxPublisher, writer: DatabaseWriter,
                             clusters: Reloadable<ClusterRegistry>) throws -> HealthLoop {
        let settings = config.health
        let topology = try settings.topology.map { try Topology(contentsOf: $0) } ?? Topology()
        let library = try settings.checks.map { try CheckLibrary(contentsOf: $0) } ?? CheckLibrary([])
        if library.checks.isEmpty { logger.warning("no checks configured (health.checks): nothing is evaluated, no alert is raised") }
        if config.intake.mode != .core {
            try ensureStream(StreamConfig(
                name: settings.alertStream, description: "clusterd alerts: every firing and resolved transition, sequenced",
                subjects: ["\(settings.alertPrefix).>"], duplicateWindow: config.intake.duplicateWindow,
                maxAge: config.intake.maxAge, replicas: config.intake.replicas), on: connection)
        }
        let now = Int64(Date().timeIntervalSince1970)
        let engine = HealthEngine(library: library, topology: topology, now: now)
        watchedMetrics.replace(with: library.metricNames)
        let database = writer.database
        let book = AlertBook(database: database, prefix: settings.alertPrefix, resendInterval: settings.resendInterval.wholeSeconds)
        // Topology-causal inhibition follows the topology a reload installs.
        let current = self.topology
        book.parents = { current.current.rackParents[$0] ?? [] }
        book.roomParents = { current.current.roomParents[$0] ?? [] }
        book.chassisParents = { current.current.chassisParents[$0] ?? [] }
        book.isChassisController = { current.current.chassisControllers.contains($0) }
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
                              interval: settings.evaluationInterval, counters: counters, logger: logger)
        loop.historyRetention = settings.historyRetention.wholeSeconds
        health = loop
        parts.append(ServicePart("health", start: loop.start, stop: loop.stop))
        // Re-sends and end-of-maintenance announcements on the scheduler's clock; the
        // evaluation ticks stay with the loop (sub-second, and the engine is its thread's).
        scheduler.every(1, "alerts.housekeeping") { now in loop.housekeeping(now: now) }
        self.topology.replace(with: topology)
        maintenance = try MaintenanceResponder(writer: writer, topology: self.topology,
                                               connection: connection, logger: logger)
        return loop
    }
}
