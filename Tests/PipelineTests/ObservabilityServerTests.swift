import Foundation
import Observability
import Pipeline
import Testing

/// Issue 21 #6: the /metrics server answered one connection at a time, so one slowloris
/// connection blocked every probe. Idle and trickling connections now sit on threads of their
/// own, each with a deadline for its whole request.
@Suite(.timeLimit(.minutes(1))) struct ObservabilityServerTests {
    static func connect(_ port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return fd
    }

    /// Sends `text` and reads the answer to its end.
    static func exchange(_ fd: Int32, _ text: String) -> String {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            answer += chunk[0..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    @Test func twentyIdleOrTricklingConnectionsDoNotDelayAProbe() throws {
        let server = try ObservabilityServer(host: "127.0.0.1", port: 0) { request in
            (200, "text/plain", Array("ok \(request.path)\n".utf8))
        }
        server.start()
        defer { server.stop() }
        // Ten connections that say nothing, ten that send half a request line.
        var held: [Int32] = (0..<10).map { _ in Self.connect(server.port) }
        for _ in 0..<10 {
            let fd = Self.connect(server.port)
            _ = Array("GET /met".utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            held.append(fd)
        }
        defer { held.forEach { close($0) } }
        Thread.sleep(forTimeInterval: 0.2)
        let started = Date()
        let probe = Self.connect(server.port)
        defer { close(probe) }
        let answer = Self.exchange(probe, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let took = Date().timeIntervalSince(started)
        #expect(answer.hasPrefix("HTTP/1.1 200") && answer.contains("ok /healthz"), "\(answer)")
        #expect(took < 1, "the probe took \(took) s behind 20 idle connections")
        print("probe answered in \(String(format: "%.1f", took * 1000)) ms with 20 idle or trickling connections open")
        // A trickling connection is cut at the request deadline, not kept for ever.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(held[15], SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        let cut = Date()
        #expect(recv(held[15], &byte, 1, 0) == 0)
        #expect(Date().timeIntervalSince(cut) < ObservabilityServer.requestDeadline + 1)
    }
}
