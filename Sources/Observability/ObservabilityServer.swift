import Config
import Foundation
import Synchronization
import Threads

/// A small HTTP/1.1 server for GET requests only — `/metrics`, `/healthz`, `/readyz`: an
/// accepting thread hands each connection to a thread of its own (at most ``maxConnections``
/// at once; more are closed at once), and a request must arrive whole within
/// ``requestDeadline``, so idle or trickling connections never keep a probe waiting.
/// Hand-written on POSIX sockets: an HTTP framework would add an event-loop stack to the
/// build for three fixed responses.
public final class ObservabilityServer: @unchecked Sendable {
    /// A response: status code, content type, body.
    public typealias Response = (status: Int, contentType: String, body: [UInt8])

    /// A request: its path (without query) and its headers (names lower-cased).
    public struct Request: Sendable {
        public var path: String
        public var headers: [String: String]
    }

    private let socket: Int32
    /// The port it listens on (the real one when 0 was asked for).
    public let port: UInt16
    private let handler: @Sendable (Request) -> Response
    private let worker = WorkerThread()
    private let active = Mutex(0)

    /// Connections served at once, at most.
    public static let maxConnections = 64
    /// Time a client has to send its whole request (seconds).
    public static let requestDeadline = 5.0

    /// Listens on `host:port` (port 0: any free port).
    public init(host: String, port: UInt16, handler: @escaping @Sendable (Request) -> Response) throws {
        self.handler = handler
        let fd = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard let resolved = HostAddress.ipv4(of: host) else {
            close(fd)
            throw ServerError("\(host) is neither an IPv4 address nor a name that resolves to one")
        }
        address.sin_addr = resolved
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ServerError("cannot listen on \(host):\(port): \(reason)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.port = UInt16(bigEndian: actual.sin_port)
        socket = fd
    }

    struct ServerError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// Starts answering.
    public func start() {
        worker.start(name: "clusterd-http") { [self] in
            while !worker.isStopping {
                let client = accept(socket, nil, nil)
                if client < 0 { if worker.isStopping { return } else { continue } }
                let admitted = active.withLock { n in
                    guard n < Self.maxConnections else { return false }
                    n += 1
                    return true
                }
                guard admitted else { close(client); continue }
                Thread { [self] in
                    serve(client)
                    active.withLock { $0 -= 1 }
                }.start()
            }
        }
    }

    /// Stops listening.
    public func stop() {
        worker.stop { [socket] in
            shutdown(socket, Int32(SHUT_RDWR))
            close(socket)
        }
    }

    private func serve(_ client: Int32) {
        defer { close(client) }
        var sendTimeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        let deadline = Date().addingTimeInterval(Self.requestDeadline)
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while request.count < 16_384 {
            // What is left of the request's deadline, not a fresh timeout per byte (a client
            // trickling a byte a second would otherwise hold the connection for ever).
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return }
            var timeout = timeval(tv_sec: Int(left), tv_usec: Int((left - left.rounded(.down)) * 1_000_000))
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            request += chunk[0..<n]
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
        }
        // A request cut short (deadline, closed, too long) gets no answer.
        guard request.count >= 4, request.suffix(4) == [13, 10, 13, 10] else { return }
        let lines = String(decoding: request, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let line = (lines.first ?? "").split(separator: " ")
        var headers: [String: String] = [:]
        for header in lines.dropFirst() {
            guard let colon = header.firstIndex(of: ":") else { continue }
            headers[header[..<colon].lowercased()] = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let response: Response
        if line.count >= 2, line[0] == "GET" {
            response = handler(Request(path: String(line[1].split(separator: "?").first ?? ""), headers: headers))
        } else {
            response = (405, "text/plain", Array("only GET\n".utf8))
        }
        let reason = [200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"][response.status] ?? "Status"
        let head = "HTTP/1.1 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(response.body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + response.body
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }
}
