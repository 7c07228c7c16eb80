import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A `nats-server` child process: JetStream on, loopback only, its own store directory, and
/// killed with its parent (setpriv's parent-death signal) so a crash never leaves it
/// running. Tests start one per suite; `clusterd run` starts one when no NATS URL is
/// configured (the embedded default).
///
/// Linux delivers the parent-death signal when the *thread* that forked the child exits, not
/// the process. So each server is spawned by a supervising thread of its own that lives exactly
/// as long as the child: it waits for the child's exit and reports an exit nobody asked for to
/// ``onUnexpectedExit``.
public final class NATSServer: @unchecked Sendable {
    /// Why a server could not start.
    public struct StartError: Error, CustomStringConvertible {
        /// What went wrong, with the server's own log when it has one.
        public let description: String
    }

    /// Store and ports-file directory.
    public let directory: URL
    /// Whether ``directory`` is removed when the object goes away (temporary servers).
    private let temporary: Bool
    private let lock = NSLock()
    private var _port: Int
    private var process: Process?
    private let extraArguments: [String]
    private var _onUnexpectedExit: (@Sendable (_ status: Int32, _ logTail: String) -> Void)?

    /// The port, stable across ``restart()``.
    public var port: Int { lock.withLock { _port } }

    /// `nats://127.0.0.1:<port>`.
    public var url: String { "nats://127.0.0.1:\(port)" }

    /// The running server's process id (nil when stopped).
    public var processIdentifier: Int32? { lock.withLock { process.map(\.processIdentifier) } }

    /// The server's log (its standard error).
    public var logFile: URL { directory.appendingPathComponent("server.log") }

    /// Called on the supervising thread when the server exits without ``stop()``: its exit
    /// status and the last lines of its log. Set it before the server can die, i.e. right
    /// after `init`.
    public var onUnexpectedExit: (@Sendable (_ status: Int32, _ logTail: String) -> Void)? {
        get { lock.withLock { _onUnexpectedExit } }
        set { lock.withLock { _onUnexpectedExit = newValue } }
    }

    /// Starts a server; `arguments` are added to the command line (e.g. `["-c", file]`).
    /// Without `directory` it lives in a temporary directory removed afterwards; `port` 0
    /// picks a free port. With `fallbackToFreePort`, a `port` already taken by another program
    /// is replaced by a free one (see ``port``) instead of failing.
    public init(arguments: [String] = [], directory: URL? = nil, port: Int = 0, fallbackToFreePort: Bool = false) throws {
        temporary = directory == nil
        self.directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-nats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        if temporary { TemporaryStores.shared.add(self.directory.path) }
        extraArguments = arguments
        _port = port != 0 && fallbackToFreePort && !Self.isFree(port: port) ? 0 : port
        try start()
    }

    /// Whether nothing listens on `127.0.0.1:<port>` (a bind succeeds).
    public static func isFree(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        // As nats-server binds: connections of a server that just stopped linger in TIME_WAIT
        // and must not make the port look taken (a quick restart would move the broker).
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Starts the server (again), on the port it had before if it ran already.
    public func start() throws {
        lock.lock()
        precondition(process == nil, "already running")
        let port = _port
        lock.unlock()
        let server = ["nats-server", "-js", "-sd", directory.appendingPathComponent("store").path,
                      "-a", "127.0.0.1", "-p", port == 0 ? "-1" : String(port),
                      "--ports_file_dir", directory.path] + extraArguments
        let p = Process()
        let setpriv = "/usr/bin/setpriv"
        if FileManager.default.isExecutableFile(atPath: setpriv) {
            p.executableURL = URL(fileURLWithPath: setpriv)
            p.arguments = ["--pdeathsig", "TERM", "--"] + server
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = server
        }
        p.standardOutput = FileHandle.nullDevice
        // Appended across restarts: the log of a server that died stays readable.
        if !FileManager.default.fileExists(atPath: logFile.path) {
            guard FileManager.default.createFile(atPath: logFile.path, contents: nil) else {
                throw StartError(description: "cannot create the nats-server log \(logFile.path)")
            }
        }
        let log = try FileHandle(forWritingTo: logFile)
        log.seekToEndOfFile()
        p.standardError = log
        try spawnSupervised(p)
        let portsFile = directory.appendingPathComponent("nats-server_\(p.processIdentifier).ports")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let data = try? Data(contentsOf: portsFile),
               let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let urls = json["nats"] as? [String], let first = urls.first,
               let found = Int(first.split(separator: ":").last ?? "") {
                lock.withLock { _port = found }
                return
            }
            if !p.isRunning { break }
            usleep(10_000)
        }
        stop()
        throw StartError(description: "nats-server did not start (port \(port == 0 ? "any" : String(port))): \(logTail())")
    }

    /// Spawns `p` from a thread that then waits for its exit, so that the parent-death signal
    /// (tied to the forking thread) fires only when the server is really orphaned.
    private func spawnSupervised(_ p: Process) throws {
        let spawned = DispatchSemaphore(value: 0)
        let exited = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: (any Error)?
        p.terminationHandler = { _ in exited.signal() }
        let thread = Thread { [self] in
            do { try ChildProcess.run(p) } catch {
                failure = error
                spawned.signal()
                return
            }
            lock.withLock { process = p }
            spawned.signal()
            exited.wait()
            let (unexpected, handler) = lock.withLock { () -> (Bool, (@Sendable (Int32, String) -> Void)?) in
                guard process === p else { return (false, nil) }  // stop() took it
                process = nil
                return (true, _onUnexpectedExit)
            }
            try? FileManager.default.removeItem(at: directory.appendingPathComponent("nats-server_\(p.processIdentifier).ports"))
            if unexpected { handler?(p.terminationStatus, logTail()) }
        }
        thread.name = "nats-server-supervisor"
        thread.start()
        spawned.wait()
        if let failure { throw StartError(description: "cannot start nats-server: \(failure)") }
    }

    /// The last lines of the server's log.
    public func logTail(lines: Int = 5) -> String {
        let text = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }

    /// Stops the server (SIGTERM) and waits for it; the store stays for a restart.
    public func stop() { end(SIGTERM) }

    /// Kills the server (SIGKILL: a crash, nothing flushed) and waits for it; the store stays
    /// for a restart.
    public func kill() { end(SIGKILL) }

    private func end(_ signal: Int32) {
        let p: Process? = lock.withLock {
            defer { process = nil }
            return process
        }
        guard let p else { return }
        if p.isRunning {
            _ = Glibc.kill(p.processIdentifier, signal)
            ChildProcess.waitForExit(of: p.processIdentifier)
        }
        try? FileManager.default.removeItem(at: directory.appendingPathComponent("nats-server_\(p.processIdentifier).ports"))
    }

    /// Stops and starts again with the same port and store.
    public func restart() throws {
        stop()
        try start()
    }

    deinit {
        stop()
        if temporary {
            try? FileManager.default.removeItem(at: directory)
            TemporaryStores.shared.remove(directory.path)
        }
    }
}

/// Temporary store directories of servers still alive, removed when the process exits: a
/// process may end with servers it never released (a test run left ~70 stores of a few MB
/// each behind per run, 3.6 GB on a developer's machine after some weeks).
final class TemporaryStores: @unchecked Sendable {
    static let shared = TemporaryStores()
    private let lock = NSLock()
    private var paths = Set<String>()

    private init() {
        atexit {
            for path in TemporaryStores.shared.lock.withLock({ TemporaryStores.shared.paths }) {
                try? FileManager.default.removeItem(atPath: path)
            }
        }
    }

    func add(_ path: String) { lock.withLock { _ = paths.insert(path) } }
    func remove(_ path: String) { lock.withLock { _ = paths.remove(path) } }
}
