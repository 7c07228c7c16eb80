import Bus
import BusTestSupport
import Foundation
import Intake
import Logging
import Store
import Synchronization
import Testing

/// Several parts commit and ask for their rows to be published at once, most of them without
/// waiting for a drain under way (``OutboxPublisher/drainUnlessBusy()``): every row still
/// goes out exactly once, and none is left behind once the last caller returned.
@Suite(.timeLimit(.minutes(1))) final class OutboxPublisherTests: BusSuite {
    let fixture: BusFixture

    init() throws { fixture = try BusFixture("clusterd-outbox") }

    @Test func concurrentDrainsPublishEveryRowOnceAndLeaveNoneBehind() async throws {
        let writer = try DatabaseWriter(path: directory.appendingPathComponent("outbox.db").path)
        _ = try writer.perform { try $0.migrate(Outbox.migrations) }
        let connection = try BusConnection(ConnectionOptions(servers: [server.url], name: "outbox-publisher"))
        let publisher = OutboxPublisher(writer: writer, connection: connection, logger: Logger(label: "outbox-test"))
        let received = Mutex<[String: Int]>([:])
        let subscription = try client.subscribe("outbox.test.>") { m in
            received.withLock { $0[m.header("Nats-Msg-Id") ?? "?", default: 0] += 1 }
        }
        try client.flush()
        defer { subscription.unsubscribe() }

        // Rounds of parts committing at once and asking for a drain: after each round, with
        // every caller returned, nothing may be left (a drain that ended without looking again
        // would strand the rows of one that found it busy).
        let threads = 4, rounds = 150
        var stranded = 0
        for r in 0..<rounds {
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                try? writer.transaction { db in
                    try Outbox(db).append(OutboxMessage(subject: "outbox.test.\(t)", messageID: "m-\(t)-\(r)", payload: Array("\(r)".utf8)))
                }
                _ = try? publisher.drainUnlessBusy()
            }
            let left = try writer.perform { try Outbox($0).pending().count }
            stranded += left
            if left > 0 { _ = try publisher.drain() }
        }
        #expect(stranded == 0, "\(stranded) rows were left in the outbox after every caller of their round returned")
        let rows = rounds
        try await eventually("every row published", timeout: 30, state: { "\(received.withLock { $0.count }) of \(threads * rows)" }) {
            received.withLock { $0.count } == threads * rows
        }
        try client.flush()
        #expect(received.withLock { $0.values.allSatisfy { $0 == 1 } }, "a row was published twice")
    }
}
