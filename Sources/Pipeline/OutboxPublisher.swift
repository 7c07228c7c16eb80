import Bus
import Logging
import Store

/// Publishes committed outbox rows, each with its deterministic `Nats-Msg-Id`, then removes
/// them. A crash before the removal re-publishes them on restart; a stream's duplicate
/// window drops the copies.
public struct OutboxPublisher {
    let outbox: Outbox
    let connection: BusConnection
    let logger: Logger

    /// A publisher of `database`'s outbox on `connection`.
    public init(database: Database, connection: BusConnection, logger: Logger) {
        outbox = Outbox(database)
        self.connection = connection
        self.logger = logger
    }

    /// Publishes everything pending; returns how many were sent. Throws when the broker
    /// did not confirm (the rows stay and are sent again next time).
    @discardableResult
    public func drain() throws -> Int {
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
