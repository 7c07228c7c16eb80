import Bus
import Foundation
import Intake
import MetricBuffers

extension Backtest {
    /// What a metrics stream gave a back-test.
    public struct StreamRead: Sendable, Equatable {
        /// Messages read (stored in the window).
        public var messages = 0
        /// Samples kept in the buffers.
        public var samples = 0
        /// Lines that did not decode, or samples whose series the buffers' limits refused.
        public var rejected = 0
    }

    /// The metric lines a JetStream stream stored between `from` and `to` (epoch seconds), in
    /// buffers of `resolution` that reach back over the whole window — where the live buffers
    /// (`metrics.retention_hours`) do not: an operator who keeps `cc.metrics.>` in a stream can
    /// try a checks library on longer history. Lines without a timestamp take the time the
    /// stream stored them. Read through an ephemeral consumer: the stream is left as it was.
    public static func metrics(stream: String, subject: String, on jetStream: JetStream, from: Int64, to: Int64, resolution: Int64,
                               limits: MetricStore.Limits, defaultCluster: String) throws -> (MetricStore, StreamRead) {
        let store = MetricStore(resolution: resolution, retention: to - from + 2 * resolution, limits: limits)
        var read = StreamRead()
        let reader = try jetStream.history(stream: stream, subject: subject, since: Date(timeIntervalSince1970: TimeInterval(from)))
        reading: while true {
            // The first batch waits for the server to place the consumer; after it, an empty
            // fetch means the stream has nothing more.
            let batch = try reader.fetch(batch: 512, timeout: .seconds(read.messages == 0 ? 5 : 2))
            if batch.isEmpty { break }
            for m in batch {
                let stored = m.delivery.timestamp / 1_000_000_000
                if stored > to { break reading }  // stored after the back-test began: not history
                read.messages += 1
                let (samples, letters) = MetricIntake.decode(m.message, defaultCluster: defaultCluster, now: stored)
                read.rejected += letters.count
                for s in samples where s.time >= from && s.time <= to {
                    if store.record(s.seriesKey, time: s.time, value: s.value, knownHost: true) == nil { read.samples += 1 } else { read.rejected += 1 }
                }
                if m.delivery.pending == 0 { break reading }
            }
        }
        return (store, read)
    }
}
