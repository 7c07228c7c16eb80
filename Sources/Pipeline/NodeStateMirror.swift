import Bus
import Logging
import Model
import Nodes

/// Mirrors each node's current state into the KV bucket `clusterd_nodes` (key
/// `<cluster>.<hostname>`), so `nats kv get|watch|history clusterd_nodes` show it. Written
/// after the commit, on every change point; the database stays the source of truth.
public final class NodeStateMirror: @unchecked Sendable {
    /// The bucket name.
    public static let bucket = "clusterd_nodes"
    let kv: KeyValueBucket
    let counters: PipelineCounters
    let logger: Logger

    /// Opens (creating) the bucket, keeping 10 revisions per key for `nats kv history`.
    public init(connection: BusConnection, counters: PipelineCounters, logger: Logger, replicas: Int = 1) throws {
        kv = try JetStream(connection).keyValue(bucket: Self.bucket, description: "clusterd: current state of every node (<cluster>.<hostname>)",
                                               history: 10, replicas: replicas)
        self.counters = counters
        self.logger = logger
    }

    /// The value stored for an observation.
    static func value(_ o: NodeObservation) -> JSONValue {
        .object([("cluster", .string(o.cluster)), ("hostname", .string(o.hostname)), ("subCluster", .string(o.subCluster)),
                 ("state", .string(o.state.rawValue)), ("flags", .string(o.slurm.description)), ("health", .string(o.health.state)),
                 ("missing", .array(o.health.missing.map(JSONValue.string))), ("degraded", .array(o.health.degraded.map(JSONValue.string))),
                 ("since", .integer(o.at))])
    }

    /// Puts every changed node (the last observation of a node wins within a batch).
    public func mirror(_ observations: [NodeObservation]) {
        for o in observations where o.changed {
            do {
                try kv.put("\(o.cluster).\(o.hostname)", Array(Self.value(o).jsonText.utf8))
                counters.add("kv.nodes.puts")
            } catch {
                counters.add("kv.nodes.errors")
                logger.warning("node state not mirrored to KV", metadata: ["node": "\(o.cluster).\(o.hostname)", "error": "\(error)"])
            }
        }
    }
}
