import ArgumentParser
import Config
import Foundation
import Logging
import Pipeline
import ServiceLifecycle

/// `clusterd run`: the daemon.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run clusterd: job archive, node states, metric buffers, health evaluation, alerts, query API.",
        discussion: """
            With no NATS URL (neither --nats-url nor nats.servers in the file), clusterd starts a local \
            nats-server with JetStream itself, storing under <data-dir>/nats, and stops it on exit. \
            SIGTERM or SIGINT finish the batch in flight and exit; a second signal exits at once. \
            SIGHUP re-reads the topology, checks and cluster files (an invalid one keeps the running ones).
            """
    )

    @Option(name: .long, help: "Configuration file (YAML, see config/clusterd.yaml).")
    var config: String?

    @Option(name: .customLong("nats-url"), help: "NATS server URL(s), comma-separated; overrides nats.servers.")
    var natsURL: String?

    @Option(name: .customLong("data-dir"), help: "Data directory: database and archive live inside unless configured elsewhere.")
    var dataDir: String?

    @Option(help: "host:port of /metrics, /healthz and /readyz; overrides observability.listen (empty: off).")
    var listen: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error.")
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: "text (default) or json: one JSON object per line, for log shippers.")
    var logFormat = "text"

    func run() async throws {
        var settings = ClusterdConfig()
        if let config {
            // A configuration problem is not a usage problem: say what is wrong, not the usage.
            do { settings = try ClusterdConfig.load(path: config) } catch { throw RunError(description: error.description) }
        }
        if let natsURL {
            settings.nats.servers = natsURL.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            for url in settings.nats.servers {
                if let problem = ClusterdConfig.problem(natsURL: url) { throw RunError(description: "--nats-url: \(problem)") }
            }
        }
        if let dataDir { settings.storage.dataDir = dataDir }
        if let listen { settings.observability.listen = listen }
        do { try settings.validate() } catch { throw RunError(description: error.description) }
        if let logLevel {
            guard let level = ClusterdConfig.LogLevel(rawValue: logLevel) else {
                throw ValidationError("unknown log level \(logLevel): use \(ClusterdConfig.LogLevel.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            settings.logLevel = level
        }
        let level = Logger.Level(rawValue: settings.logLevel.rawValue) ?? .info
        guard logFormat == "text" || logFormat == "json" else { throw ValidationError("--log-format is text or json") }
        var logger = logFormat == "json" ? Logger(label: "clusterd") { JSONLogHandler(label: $0) }
            : Logger(label: "clusterd") { TextLogHandler(label: $0) }
        logger.logLevel = level
        logger.notice("clusterd \(ClusterdService.version) starting", metadata: [
            "config": "\(config ?? "(none: built-in defaults)")",
            "nats": "\(settings.nats.servers.isEmpty ? "embedded nats-server" : settings.nats.servers.map(ClusterdConfig.redacted).joined(separator: ","))",
            "data_dir": "\(settings.storage.dataDir)", "pid": "\(getpid())",
        ])

        let service = ClusterdService(config: settings, logger: logger)
        // swift-service-lifecycle: SIGTERM/SIGINT shut the group down gracefully — the batch in
        // flight finishes and is acked, subscriptions stop, the checkpoint is written, the
        // database closes. A second signal exits at once (a stuck broker must not keep an
        // operator waiting).
        let second = SecondSignal()
        let hangup = ReloadOnHangup(service)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: ClusterdLifecycleService(service: service, logger: logger),
                             successTerminationBehavior: .gracefullyShutdownGroup,
                             failureTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch {
            logger.critical("clusterd stopped on an error", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
        _ = (second, hangup)
    }
}

/// clusterd in a swift-service-lifecycle group: builds everything (blocking work on a thread
/// of its own; a shutdown request during start-up makes it give up), then runs each part as
/// a `Service` of an inner group, which stops them in reverse order on the graceful shutdown
/// (the batch in flight finishes); then the checkpoint, the connection, the embedded broker.
struct ClusterdLifecycleService: Service {
    let service: ClusterdService
    let logger: Logger

    func run() async throws {
        // nil: a shutdown was requested; a text: why clusterd cannot go on.
        let (stops, stop) = AsyncStream.makeStream(of: String?.self)
        service.onFatal = { stop.yield($0) }
        do {
            // A shutdown request during start-up (an unreachable broker retries for ever)
            // makes prepare() give up at its next retry.
            try await withGracefulShutdownHandler {
                try await Self.offload { try service.prepare() }
            } onGracefulShutdown: {
                service.cancelStart()
            }
        } catch is ClusterdService.StartCancelled {
            logger.notice("shutdown requested during start-up")
            await Self.offloadQuietly { service.stop() }
            return
        } catch {
            await Self.offloadQuietly { service.stop() }
            throw error
        }
        let parts = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: service.parts.map { .init(service: PartService(part: $0),
                                                successTerminationBehavior: .gracefullyShutdownGroup,
                                                failureTerminationBehavior: .gracefullyShutdownGroup) },
            logger: logger))
        let running = Task {
            do { try await parts.run(); stop.yield("a part of clusterd ended") } catch { stop.yield("a part of clusterd failed: \(error)") }
        }
        let requested = Task {
            try? await gracefulShutdown()
            stop.yield(nil)
        }
        var reason: String?
        for await first in stops {
            reason = first
            break
        }
        requested.cancel()
        if let reason { logger.critical("clusterd cannot go on", metadata: ["reason": "\(reason)"]) } else {
            logger.notice("shutdown requested: finishing the batch in flight")
        }
        await parts.triggerGracefulShutdown()
        _ = await running.result
        await Self.offloadQuietly { service.stop() }
        if let reason { throw RunError(description: reason) }
    }

    /// Runs blocking work off the cooperative pool.
    static func offload(_ body: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            Thread { c.resume(with: Result { try body() }) }.start()
        }
    }

    static func offloadQuietly(_ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            Thread { body(); c.resume() }.start()
        }
    }
}

/// One part of clusterd as a `Service`: started when the group runs, stopped (off the
/// cooperative pool: it waits for the batch in flight) on the graceful shutdown or on
/// cancellation.
struct PartService: Service {
    let part: ServicePart

    func run() async throws {
        await ClusterdLifecycleService.offloadQuietly { part.start() }
        try? await gracefulShutdown()
        await ClusterdLifecycleService.offloadQuietly { part.stop() }
    }
}

/// A reason `clusterd run` cannot run, printed without the usage text.
struct RunError: Error, CustomStringConvertible {
    let description: String
}

/// Exits at once on the second SIGTERM/SIGINT (the first starts the graceful shutdown).
final class SecondSignal: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private var count = 0

    init() {
        let queue = DispatchQueue(label: "clusterd.signals")  // serial: one handler at a time
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)  // handled by dispatch sources (here and in the service group)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [unowned self] in
                count += 1
                if count > 1 { Foundation.exit(130) }
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// SIGHUP: ``ClusterdService/reload(origin:)``; the outcome goes to the log (an invalid file
/// keeps the running configuration).
final class ReloadOnHangup: @unchecked Sendable {
    private let source: DispatchSourceSignal

    init(_ service: ClusterdService) {
        signal(SIGHUP, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "clusterd.reload"))
        source.setEventHandler { _ = try? service.reload(origin: "SIGHUP") }
        source.resume()
    }
}
