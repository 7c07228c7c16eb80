import Bus
import Model
import Nodes
import Store

/// Mirrors each node's current state into the KV bucket `clusterd_nodes` (key
/// `<cluster>.<hostname>`), so `nats kv get|watch|history clusterd_nodes` show it. Each
/// change point is an outbox row of the batch that made it (a put is a publish on
/// `$KV.clusterd_nodes.<key>`), published after the commit like every other message; the
/// database stays the source of truth.
public enum NodeStateMirror {
    /// The bucket name.
    public static let bucket = "clusterd_nodes"

    /// Creates the bucket when missing, keeping 10 revisions per key for `nats kv history`.
    public static func ensureBucket(connection: BusConnection, replicas: Int = 1) throws {
        _ = try JetStream(connection).keyValue(bucket: bucket, description: "clusterd: current state of every node (<cluster>.<hostname>)",
                                               history: 10, replicas: replicas)
    }

    /// The value stored for an observation.
    static func value(_ o: NodeObservation) -> JSONValue {
        .object([("cluster", .string(o.cluster)), ("hostname", .string(o.hostname)), ("subCluster", .string(o.subCluster)),
                 ("state", .string(o.state.rawValue)), ("flags", .string(o.slurm.description)), ("health", .string(o.health.state)),
                 ("missing", .array(o.health.missing.map(JSONValue.string))), ("degraded", .array(o.health.degraded.map(JSONValue.string))),
                 ("since", .integer(o.at))])
    }

    /// The put of `o`, entry `entry` of the message `origin` (so a replay after a crash has
    /// the same id and JetStream drops the copy).
    static func put(_ o: NodeObservation, origin: String, entry: String) -> OutboxMessage {
        OutboxMessage(subject: "$KV.\(bucket).\(o.cluster).\(o.hostname)", messageID: "kv-nodes-\(origin)-\(entry)",
                      payload: value(o).jsonBytes)
    }
}
