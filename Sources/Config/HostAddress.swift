import Foundation

/// Host names in listen addresses (`observability.listen`).
public enum HostAddress {
    /// `host` as an IPv4 address: a literal, or the first IPv4 address a name (`localhost`)
    /// resolves to; empty means every interface.
    public static func ipv4(of host: String) -> in_addr? {
        var address = in_addr()
        if host.isEmpty { return in_addr(s_addr: INADDR_ANY) }
        if inet_pton(AF_INET, host, &address) == 1 { return address }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(list) }
        guard let sa = first.pointee.ai_addr else { return nil }
        return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
    }
}
