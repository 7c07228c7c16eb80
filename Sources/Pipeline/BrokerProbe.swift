import Foundation

/// Why a NATS server URL cannot be reached, found with one TCP connect: libnats retries in
/// the background without saying why, and "timed out" does not tell an operator whether the
/// name, the port or a firewall is wrong.
enum BrokerProbe {
    /// "connection refused", "name does not resolve", ... for `url`; nil when a TCP
    /// connection succeeds (then the problem is above TCP: TLS, authentication, JetStream).
    static func problem(url: String, timeoutMilliseconds: Int32 = 1000) -> String? {
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
        if connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 { return nil }
        guard errno == EINPROGRESS else { return "\(host):\(port): \(String(cString: strerror(errno)))" }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, timeoutMilliseconds) == 1 else { return "\(host):\(port): no answer within \(timeoutMilliseconds) ms (firewall?)" }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error == 0 ? nil : "\(host):\(port): \(String(cString: strerror(error)))"
    }
}
