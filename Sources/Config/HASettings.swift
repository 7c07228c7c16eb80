import Foundation

extension ClusterdConfig {
    /// Running as one of several replicas on a NATS cluster (``instance`` set): each replica
    /// reads the whole intake stream through durable consumers of its own and keeps its own
    /// database; only the holder of the publisher lease publishes derived messages.
    public struct HA: Sendable, Equatable, ConfigSection {
        /// This replica's name, unique among the replicas (letters, digits, `_`, `-`); empty:
        /// not replicated (one clusterd publishes everything).
        public var instance = ""
        /// Key-value bucket holding the publisher lease.
        public var leaseBucket = "clusterd_lease"
        /// How long the lease outlives its holder's last renewal: a crashed publisher's
        /// successor starts publishing within three quarters of this (plus a quarter second).
        public var leaseTTL = Duration.seconds(10)
        /// A standby keeps its own copies of derived messages this long before dropping them
        /// unsent (the publisher sent them); a take-over publishes the younger ones again,
        /// which the streams' duplicate windows drop. More than the lease time, less than
        /// `intake.duplicate_window_seconds`.
        public var standbyOutbox = Duration.seconds(60)

        /// The defaults.
        public init() {}

        /// Whether this clusterd is one of several replicas.
        public var isReplicated: Bool { !instance.isEmpty }

        public static var settings: [Setting<Self>] {
            [.value("instance", \.instance), .value("lease_bucket", \.leaseBucket),
             .duration("lease_ttl_seconds", \.leaseTTL, unit: .seconds(1)),
             .duration("standby_outbox_seconds", \.standbyOutbox, unit: .seconds(1))]
        }
    }
}
