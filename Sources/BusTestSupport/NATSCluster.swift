import Bus
import Foundation

/// A NATS cluster on loopback for tests: `size` nats-servers with JetStream, routed to each
/// other, every one on free ports; ready once JetStream has a meta leader.
public final class NATSCluster: @unchecked Sendable {
    /// The nodes, in order n1, n2, ...
    public let nodes: [NATSServer]
    let directory: URL

    /// Every node's client URL (what a client lists to fail over).
    public var urls: [String] { nodes.map(\.url) }

    /// Starts the nodes and waits (up to 30 s) until a stream with a replica on every node can
    /// be placed: a meta leader answering JetStream requests is not enough — until every peer
    /// has joined it, an R3 stream fails with "no suitable peers for placement" (seen under load).
    public init(size: Int = 3) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-natscluster-\(UUID().uuidString)")
        self.directory = directory
        let routes = (0..<size).map { _ in freeLoopbackPort() }
        let routeList = routes.map { "nats-route://127.0.0.1:\($0)" }.joined(separator: ", ")
        nodes = try (0..<size).map { i in
            let node = directory.appendingPathComponent("n\(i + 1)")
            try FileManager.default.createDirectory(at: node, withIntermediateDirectories: true)
            let conf = node.appendingPathComponent("node.conf")
            try """
                server_name: n\(i + 1)
                cluster { name: c1, listen: 127.0.0.1:\(routes[i]), routes: [\(routeList)] }

                """.write(to: conf, atomically: true, encoding: .utf8)
            return try NATSServer(arguments: ["-c", conf.path], directory: node)
        }
        let client = try BusConnection(ConnectionOptions(servers: urls, name: "cluster-probe"))
        defer { client.close() }
        let deadline = Date().addingTimeInterval(30)
        while true {
            do {
                try JetStream(client).ensureStream(StreamConfig(name: "NATSCLUSTER_READY", description: "every node placed a replica",
                                                                subjects: ["natscluster.ready"], fileStorage: false, replicas: size))
                return
            } catch {
                guard Date() < deadline else { throw error }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    deinit {
        for node in nodes { node.stop() }
        try? FileManager.default.removeItem(at: directory)
    }
}
