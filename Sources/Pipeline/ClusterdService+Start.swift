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

/// Start-up: the embedded nats-server and its supervision, retries until the broker answers.
extension ClusterdService {
    /// Starts the embedded nats-server (port `nats.embedded_port`, another free one when that
    /// is taken) and watches it: an exit nobody asked for is logged as an error and the
    /// server restarted on the same port and store; a server that dies five times within a
    /// minute is fatal (``onFatal``).
    func startEmbedded() throws -> NATSServer {
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
            } catch let mismatch as Mismatch {
                throw mismatch
            } catch let error as BusError where error.isMismatch {
                throw Mismatch(description: "\(error)")
            } catch {
                var metadata: Logger.Metadata = ["error": "\(error)", "nats": "\(servers.map(ClusterdConfig.redacted).joined(separator: ","))", "in_seconds": "\(delay)"]
                if !connection.isConnected {
                    let login = BrokerProbe.Credentials(user: config.nats.connection.user, password: config.nats.connection.password, token: config.nats.connection.token)
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
