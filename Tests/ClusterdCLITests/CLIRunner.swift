import Bus
import BusTestSupport
import Foundation

/// Runs the built `clusterd` executable, as an operator or a script would.
struct CLIRunner {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The package root, found from this file's location.
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `<data>/archive/fritz/cluster.json` from the shipped example, as `clusterd run --data-dir <data>` expects it.
    static func installFritz(into data: URL) throws {
        let clusterDir = data.appendingPathComponent("archive/fritz")
        try FileManager.default.createDirectory(at: clusterDir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: packageRoot.appendingPathComponent("config/clusters/fritz/cluster.json"),
                                         to: clusterDir.appendingPathComponent("cluster.json"))
    }

    /// The `clusterd` binary `swift test` built next to the test bundle.
    static var executable: URL {
        let bundleDir = Bundle.main.bundleURL.deletingLastPathComponent()
        let candidates = [
            bundleDir.appendingPathComponent("clusterd"),
            packageRoot.appendingPathComponent(".build/debug/clusterd"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[1]
    }

    /// The hook side of the crash tests: `jobs` starts on `cc.job.event`, and their stops 40
    /// jobs behind, each retried with its message id (`retries` times) until a broker confirms;
    /// after `pauseAfter` jobs it waits for `resume`, so a stop or kill comes mid-stream.
    /// Returns the longest time between two confirmations (a leader election's stall).
    static func publishJobs(urls: [String], jobs: Int, pauseAfter: Int, resume: DispatchSemaphore, retries: Int,
                            start: (Int) -> String, stop: (Int) -> String) throws -> Duration {
        let client = try BusConnection(ConnectionOptions(servers: urls, name: "hook"))
        let js = try JetStream(client)
        var last = ContinuousClock.now, longest = Duration.zero
        for i in 1...(jobs + 40) {
            if i == pauseAfter { resume.wait() }
            var batch: [(String, String)] = []
            if i <= jobs { batch.append((start(i), "start-\(i)")) }
            if i > 40 { batch.append((stop(i - 40), "stop-\(i - 40)")) }
            for (body, id) in batch {
                _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(body.utf8)), messageID: id, retries: retries)
                let now = ContinuousClock.now
                longest = max(longest, now - last)
                last = now
            }
        }
        return longest
    }

    /// The checks of the CLI tests: a GPU temperature check, CRIT at `threshold` °C.
    static func gpuChecks(threshold: Int = 95) -> String {
        """
        checks:
          - id: gpu_temperature
            scope: component
            source: {metric: {name: nv_temp, match: {type: accelerator}}}
            rules: [{op: ">=", value: \(threshold), severity: CRIT}]

        """
    }

    /// A `clusterd run` configuration, written to `<directory>/clusterd.yaml`: cluster alex on
    /// `server`, data under `<directory>/data`, `checks` over the shipped topology evaluated every
    /// 200 ms, no HTTP listener, warnings and errors only.
    static func alexConfig(server: String, directory: URL, checks: URL) throws -> URL {
        let config = directory.appendingPathComponent("clusterd.yaml")
        try """
            nats: {servers: ["\(server)"]}
            storage: {data_dir: "\(directory.appendingPathComponent("data").path)"}
            jobs: {cluster_files: ["\(packageRoot.appendingPathComponent("config/clusters/alex/cluster.json").path)"]}
            health:
              checks: "\(checks.path)"
              topology: "\(packageRoot.appendingPathComponent("config/topology.yaml").path)"
              evaluation_interval_ms: 200
            observability: {listen: ""}
            log_level: warning
            """.write(to: config, atomically: true, encoding: .utf8)
        return config
    }

    /// Starts `clusterd` with `arguments` in the background, its standard error appended to
    /// `log` (kept across restarts, for the failure messages of tests that crash and restart it).
    static func launch(_ arguments: [String], log: URL, directory: URL? = nil, environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        if let directory { process.currentDirectoryURL = directory }
        if !FileManager.default.fileExists(atPath: log.path) { try Data().write(to: log) }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardError = handle
        process.standardOutput = FileHandle.nullDevice
        try ChildProcess.run(process)
        return process
    }

    static func run(_ arguments: [String], stdin: String = "", environment: [String: String] = [:], directory: URL? = nil) throws -> Result {
        try run(arguments, stdinBytes: Array(stdin.utf8), environment: environment, directory: directory)
    }

    static func run(_ arguments: [String], stdinBytes: [UInt8], environment: [String: String] = [:], directory: URL? = nil) throws -> Result {
        try spawn(executable, arguments, stdin: stdinBytes, environment: environment, directory: directory)
    }

    /// Runs any program (a script of the repository, python3, ...) to its end.
    static func runProgram(_ path: String, _ arguments: [String], directory: URL? = nil, environment: [String: String] = [:]) throws -> Result {
        try spawn(URL(fileURLWithPath: "/usr/bin/env"), [path] + arguments, stdin: [], environment: environment, directory: directory)
    }

    /// Runs `program` to its end with `stdin`, reading standard output and standard error
    /// together so neither pipe can fill up and stall it. posix_spawn, not Foundation's
    /// Process: Process learns of the child's exit through a socket the child inherits, so a
    /// daemon the program starts (munged keeps every inherited descriptor) would hide the exit
    /// for ever. Here the child gets only 0, 1 and 2, and after `timeout` seconds its process
    /// group is killed and the result says so: a hung tool fails its test instead of the run.
    private static func spawn(_ program: URL, _ arguments: [String], stdin: [UInt8], environment: [String: String], directory: URL?, timeout: Double = 240) throws -> Result {
        _ = SpawnExtensions.ignoreSIGPIPE
        var input: [Int32] = [0, 0], output: [Int32] = [0, 0], error: [Int32] = [0, 0]
        guard pipe(&input) == 0, pipe(&output) == 0, pipe(&error) == 0 else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "pipe: \(String(cString: strerror(errno)))"])
        }
        for fd in input + output + error { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, error[1], 2)
        _ = SpawnExtensions.closeFrom?(&actions, 3)
        if let directory { _ = SpawnExtensions.changeDirectory?(&actions, directory.path) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        let argv = ([program.path] + arguments).map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, program.path, &actions, &attributes, argv, envp)
        for fd in [input[0], output[1], error[1]] { close(fd) }
        guard spawned == 0 else {
            for fd in [input[1], output[0], error[0]] { close(fd) }
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(program.path): \(String(cString: strerror(spawned)))"])
        }
        stdin.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(input[1], bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
        close(input[1])
        let deadline = Date().addingTimeInterval(timeout)
        var collected: [Int32: [UInt8]] = [output[0]: [], error[0]: []]
        var open = [output[0], error[0]]
        var buffer = [UInt8](repeating: 0, count: 65536)
        var timedOut = false
        while !open.isEmpty {
            if Date() >= deadline { timedOut = true; kill(-pid, SIGKILL); break }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 500) >= 0 || errno == EINTR else { break }
            for entry in fds where entry.revents != 0 {
                let n = read(entry.fd, &buffer, buffer.count)
                if n > 0 { collected[entry.fd]! += buffer[0..<n] } else if n == 0 || errno != EINTR { open.removeAll { $0 == entry.fd } }
            }
        }
        for fd in [output[0], error[0]] { close(fd) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS, which Swift does not import (they are macros).
        let code: Int32 = status & 0x7f == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
        var stderrText = String(decoding: collected[error[0]]!, as: UTF8.self)
        if timedOut { stderrText += "\n[test runner: \(program.lastPathComponent) \(arguments.joined(separator: " ")) killed after \(Int(timeout)) s]" }
        return Result(status: timedOut ? -SIGKILL : code, stdout: String(decoding: collected[output[0]]!, as: UTF8.self), stderr: stderrText)
    }

    /// `GET http://127.0.0.1:<port><path>`: status and body (nil when nothing answers).
    static func get(port: Int, _ path: String) -> (Int, String)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { return nil }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let statusText = text.split(separator: " ", maxSplits: 2).dropFirst().first, let status = Int(statusText) else { return nil }
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, body)
    }
}

/// glibc's posix_spawn extensions that Swift's Glibc module does not import (they sit behind
/// feature macros), looked up once at run time.
private enum SpawnExtensions {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    /// A program that exits without reading its input must fail its write, not kill the tests.
    static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()
    static let closeFrom: CloseFrom? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: CloseFrom.self) }
    static let changeDirectory: ChangeDirectory? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: ChangeDirectory.self) }
}
