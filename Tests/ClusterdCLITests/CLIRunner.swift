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

    /// The `clusterd` binary `swift test` built next to the test bundle.
    static var executable: URL {
        let bundleDir = Bundle.main.bundleURL.deletingLastPathComponent()
        let candidates = [
            bundleDir.appendingPathComponent("clusterd"),
            packageRoot.appendingPathComponent(".build/debug/clusterd"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[1]
    }

    /// Starts `clusterd` with `arguments` in the background, its standard error appended to
    /// `log` (kept across restarts, for the failure messages of tests that crash and restart it).
    static func launch(_ arguments: [String], log: URL, directory: URL? = nil) throws -> Process {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        if !FileManager.default.fileExists(atPath: log.path) { try Data().write(to: log) }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardError = handle
        process.standardOutput = FileHandle.nullDevice
        try process.run()
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

    /// Runs `program` to its end with `stdin`; standard error is read while standard output
    /// is, so neither pipe can fill up and stall the program.
    private static func spawn(_ program: URL, _ arguments: [String], stdin: [UInt8], environment: [String: String], directory: URL?) throws -> Result {
        let process = Process()
        if let directory { process.currentDirectoryURL = directory }
        process.executableURL = program
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let input = Pipe(), output = Pipe(), error = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = error
        try process.run()
        input.fileHandleForWriting.write(Data(stdin))
        try input.fileHandleForWriting.close()
        nonisolated(unsafe) var err = Data()
        let stderrRead = DispatchGroup()
        stderrRead.enter()
        DispatchQueue.global().async { err = error.fileHandleForReading.readDataToEndOfFile(); stderrRead.leave() }
        let out = output.fileHandleForReading.readDataToEndOfFile()
        stderrRead.wait()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
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
