import Bus
import Foundation
import Logging
import Store

/// Publishes committed outbox rows, each with its deterministic `Nats-Msg-Id`, then removes
/// them. A crash before the removal re-publishes them on restart; a stream's duplicate
/// window drops the copies. Several writer loops share one publisher: it owns its own
/// connection to the database and drains under a lock, so no row is sent twice.
public final class OutboxPublisher: @unchecked Sendable {
    let outbox: Outbox
    private let lock = NSLock()
    let connection: BusConnection
    let logger: Logger

    /// A publisher of `database`'s outbox on `connection`; `database` must be a connection
    /// of its own.
    public init(database: Database, connection: BusConnection, logger: Logger) {
        outbox = Outbox(database)
        self.connection = connection
        self.logger = logger
    }

    /// Publishes everything pending; returns how many were sent. Throws when the broker
    /// did not confirm (the rows stay and are sent again next time).
    @discardableResult
    public func drain() throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        var sent = 0
        while true {
            let batch = try outbox.pending(limit: 1000)
            guard let last = batch.last else { return sent }
            for m in batch {
                try connection.publish(BusMessage(subject: m.subject, headers: ["Nats-Msg-Id": [m.messageID]], data: m.payload))
            }
            try connection.flush(timeout: .seconds(5))
            try outbox.remove(upTo: last.id)
            sent += batch.count
        }
    }
}
