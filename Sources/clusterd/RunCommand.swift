import ArgumentParser
import Foundation
import Logging
import Pipeline

/// `clusterd run`: the daemon.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run clusterd: job archive, node states, metric buffers, health evaluation, alerts, query API.",
        discussion: """
            With no NATS URL (neither --nats-url nor nats.servers in the file), clusterd starts a local \
            nats-server with JetStream itself, storing under <data-dir>/nats, and stops it on exit. \
            SIGTERM or SIGINT finish the batch in flight and exit; a second signal exits at once.
            """
    )

    @Option(name: .long, help: "Configuration file (YAML, see config/clusterd.yaml).")
    var config: String?

    @Option(name: .customLong("nats-url"), help: "NATS server URL(s), comma-separated; overrides nats.servers.")
    var natsURL: String?

    @Option(name: .customLong("data-dir"), help: "Data directory: database and archive live inside unless configured elsewhere.")
    var dataDir: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error.")
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: "text (default) or json: one JSON object per line, for log shippers.")
    var logFormat = "text"

    func run() throws {
        var settings = ClusterdConfig()
        if let config {
            do { settings = try ClusterdConfig.load(path: config) } catch {
                throw ValidationError(error.description)
            }
        }
        if let natsURL { settings.nats.servers = natsURL.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        if let dataDir { settings.storage.dataDir = dataDir }
        if let logLevel { settings.logLevel = logLevel }
        guard let level = Logger.Level(rawValue: settings.logLevel) else { throw ValidationError("unknown log level \(settings.logLevel)") }
        guard logFormat == "text" || logFormat == "json" else { throw ValidationError("--log-format is text or json") }
        var logger = logFormat == "json" ? Logger(label: "clusterd") { JSONLogHandler(label: $0) }
            : Logger(label: "clusterd") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = level

        let service = ClusterdService(config: settings, logger: logger)
        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        var signalled = 0
        let signals = DispatchQueue(label: "clusterd.signals")  // serial: one handler at a time
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: signals)
            source.setEventHandler {
                signalled += 1
                if signalled > 1 { Foundation.exit(130) }  // a second signal: exit at once
                stop.signal()
            }
            source.resume()
            sources.append(source)
        }
        do {
            try service.start()
        } catch {
            logger.critical("clusterd could not start", metadata: ["error": "\(error)"])
            service.stop()
            throw ExitCode(2)
        }
        stop.wait()
        logger.notice("signal received: finishing the batch in flight")
        service.stop()
        _ = sources
    }
}
