import Foundation
import Model

/// Why a NATS server URL cannot be reached, found with one TCP connect: libnats retries in
/// the background without saying why, and "timed out" does not tell an operator whether the
/// name, the port or a firewall is wrong.
public enum BrokerProbe {
    /// "connection refused", "name does not resolve", ... for `url`; nil when a TCP
    /// connection succeeds (then the problem is above TCP: TLS, authentication, JetStream).
    public static func problem(url: String, credentials: Credentials = Credentials(), timeoutMilliseconds: Int32 = 1000) -> String? {
        guard let components = URLComponents(string: url), let host = components.host else { return "not a URL" }
        let port = components.port ?? 4222
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let first = list else { return "\(host) does not resolve (\(String(cString: gai_strerror(resolved))))" }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        if connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
            guard errno == EINPROGRESS else { return "\(host):\(port): \(String(cString: strerror(errno)))" }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&poller, 1, timeoutMilliseconds) == 1 else { return "\(host):\(port): no answer within \(timeoutMilliseconds) ms (firewall?)" }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 { return "\(host):\(port): \(String(cString: strerror(error)))" }
        }
        // Reachable: the NATS handshake tells a refused login apart (libnats only says the
        // connection closed, or that no server is available).
        var login = credentials
        if let user = components.user?.removingPercentEncoding {
            if let password = components.password?.removingPercentEncoding { login.user = user; login.password = password } else { login.token = user }
        }
        return handshakeProblem(fd, login: login, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// User and password or token clusterd logs in with (nats.user/password/token or the URL).
    public struct Credentials: Sendable {
        var user: String?
        var password: String?
        var token: String?

        /// Credentials (all optional).
        public init(user: String? = nil, password: String? = nil, token: String? = nil) {
            self.user = user
            self.password = password
            self.token = token
        }
    }

    /// Reads INFO, sends CONNECT (with `login`) and PING: the server's -ERR, if any, named.
    static func handshakeProblem(_ fd: Int32, login: Credentials, timeoutMilliseconds: Int32) -> String? {
        func readLine() -> String? {
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while line.count < 65_536 {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, timeoutMilliseconds) == 1, recv(fd, &byte, 1, 0) == 1 else { return nil }
                if byte == 10 { return String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
                line.append(byte)
            }
            return nil
        }
        guard let info = readLine(), info.hasPrefix("INFO") else { return nil }
        // TLS first: the handshake cannot go on in plain text; libnats' own error says more.
        if info.contains("\"tls_required\":true") { return nil }
        var connect: [(String, JSONValue)] = [("verbose", .bool(false)), ("pedantic", .bool(false)), ("protocol", .integer(1)), ("name", .string("clusterd-probe"))]
        if let user = login.user { connect.append(("user", .string(user))) }
        if let password = login.password { connect.append(("pass", .string(password))) }
        if let token = login.token { connect.append(("auth_token", .string(token))) }
        let request = Array("CONNECT \(JSONValue.object(connect).jsonText)\r\nPING\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return nil }
        while let line = readLine() {
            if line.hasPrefix("PONG") { return nil }
            if line.hasPrefix("-ERR") {
                let reason = line.dropFirst(4).trimmingCharacters(in: CharacterSet(charactersIn: " '"))
                if reason.lowercased().contains("authorization") || reason.lowercased().contains("authentication") {
                    return "the server refused the login (\(reason)): check nats.user / nats.password / nats.token or the URL's credentials"
                }
                return "the server refused the connection: \(reason)"
            }
        }
        return nil
    }
}
