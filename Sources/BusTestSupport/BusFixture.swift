import Bus
import Foundation

/// What an integration-test suite needs: its own nats-server, a temporary directory and an
/// independent client connection; all three go when the fixture does.
public final class BusFixture: @unchecked Sendable {
    /// The suite's nats-server (JetStream on).
    public let server: NATSServer
    /// A fresh temporary directory.
    public let directory: URL
    /// A client of its own, as an operator or a hook would be.
    public let client: BusConnection

    /// Starts the server and connects; `name` prefixes the directory.
    public init(_ name: String) throws {
        server = try NATSServer()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        client = try BusConnection(ConnectionOptions(servers: [server.url], name: "\(name)-client"))
    }

    deinit {
        client.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A suite that runs on a ``BusFixture``: its server, directory and client by name.
public protocol BusSuite {
    /// The suite's fixture.
    var fixture: BusFixture { get }
}

extension BusSuite {
    /// The suite's nats-server.
    public var server: NATSServer { fixture.server }
    /// The suite's temporary directory.
    public var directory: URL { fixture.directory }
    /// The suite's own client connection.
    public var client: BusConnection { fixture.client }
}
