import Foundation

/// A `nats-server` child process: JetStream on, loopback only, its own store directory, and
/// killed with its parent (setpriv's parent-death signal) so a crash never leaves it
/// running. Tests start one per suite; `clusterd run` starts one when no NATS URL is
/// configured (the embedded default).
public final class NATSServer: @unchecked Sendable {
    /// Store and ports-file directory.
    public let directory: URL
    /// Whether ``directory`` is removed when the object goes away (temporary servers).
    private let temporary: Bool
    /// The port, stable across ``restart()``.
    public private(set) var port: Int = 0
    private var process: Process?
    private let extraArguments: [String]

    /// `nats://127.0.0.1:<port>`.
    public var url: String { "nats://127.0.0.1:\(port)" }

    /// Starts a server; `arguments` are added to the command line (e.g. `["-c", file]`).
    /// Without `directory` it lives in a temporary directory removed afterwards; `port` 0
    /// picks a free port.
    public init(arguments: [String] = [], directory: URL? = nil, port: Int = 0) throws {
        temporary = directory == nil
        self.directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-nats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        extraArguments = arguments
        self.port = port
        try start()
    }

    /// Starts the server (again), on the port it had before if it ran already.
    public func start() throws {
        precondition(process == nil, "already running")
        let p = Process()
        let setpriv = "/usr/bin/setpriv"
        let server = ["nats-server", "-js", "-sd", directory.appendingPathComponent("store").path,
                      "-a", "127.0.0.1", "-p", port == 0 ? "-1" : String(port),
                      "--ports_file_dir", directory.path] + extraArguments
        if FileManager.default.isExecutableFile(atPath: setpriv) {
            p.executableURL = URL(fileURLWithPath: setpriv)
            p.arguments = ["--pdeathsig", "TERM", "--"] + server
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = server
        }
        p.standardOutput = FileHandle.nullDevice
        let log = directory.appendingPathComponent("server.log")
        guard FileManager.default.createFile(atPath: log.path, contents: nil) else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: log.path]) }
        p.standardError = try FileHandle(forWritingTo: log)
        try p.run()
        process = p
        let portsFile = directory.appendingPathComponent("nats-server_\(p.processIdentifier).ports")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let data = try? Data(contentsOf: portsFile),
               let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let urls = json["nats"] as? [String], let first = urls.first,
               let found = Int(first.split(separator: ":").last ?? "") {
                port = found
                return
            }
            if !p.isRunning { break }
            usleep(10_000)
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        throw NSError(domain: "NATSServer", code: 1, userInfo: [NSLocalizedDescriptionKey: "nats-server did not start: \(output)"])
    }

    /// Stops the server (SIGTERM) and waits for it; the store stays for a restart.
    public func stop() {
        guard let p = process else { return }
        if p.isRunning {
            p.terminate()
            p.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory.appendingPathComponent("nats-server_\(p.processIdentifier).ports"))
        process = nil
    }

    /// Stops and starts again with the same port and store.
    public func restart() throws {
        stop()
        try start()
    }

    deinit {
        stop()
        if temporary { try? FileManager.default.removeItem(at: directory) }
    }
}
