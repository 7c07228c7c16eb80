import Config
import Intake
import LineProtocol
import Logging
import Model
import Nodes
import Observability
import Store

/// The node-state stage's handling of a line: every node entry is applied in its own
/// savepoint, so one bad entry is dead-lettered (naming it) while the others apply.
final class NodeLineHandler: LineHandler {
    let stage = "nodes"
    let nodes: NodeStage
    let database: Database
    let counters: PipelineCounters
    let onCommit: @Sendable ([NodeObservation]) -> Void
    /// Change points also go to the `clusterd_nodes` KV bucket (JetStream mode).
    var mirrorsToKV = false
    /// The clusters this instance owns (empty: all).
    var owned: Set<String> = []
    /// Metric health of a node (nil: `failed` for every node that is not down, as
    /// cc-backend without a metric store).
    var probe: (any NodeHealthProbe)?
    private var pending: [NodeObservation] = []

    init(nodes: NodeStage, database: Database, counters: PipelineCounters, onCommit: @escaping @Sendable ([NodeObservation]) -> Void) {
        self.nodes = nodes
        self.database = database
        self.counters = counters
        self.onCommit = onCommit
    }

    func handle(_ view: PointView, message: IncomingMessage, raw: String) throws -> [LineResult] {
        let event: NodeStateEvent
        let column: Int
        switch NodeStateEvent.decode(view) {
        case .failure(let located):
            return [.rejected(column: located.column, code: located.value.code, reason: located.value.description, entry: nil)]
        case .success(let decoded): (event, column) = decoded
        }
        if !owned.isEmpty && !owned.contains(event.cluster) { return [.notOwned] }
        var results: [LineResult] = []
        for (i, entry) in event.nodes.enumerated() {
            let part = "nodes[\(i)]"
            // A refused entry's letter quotes that entry: the whole line once per bad entry
            // multiplied a 735 kB message into gigabytes.
            let quoted = event.entries[i].jsonText
            switch entry {
            case .failure(let rejection):
                results.append(.rejected(column: column, code: rejection.code, reason: rejection.description, entry: part, raw: quoted))
            case .success(let report):
                do {
                    let observation = try database.event {
                        // The metric health is an input of the decision, read here (the stage stays pure).
                        let subCluster = try nodes.place(report, cluster: event.cluster)
                        let health = report.schedulerState == .down ? NodeHealth(state: "full")
                            : probe?.health(cluster: event.cluster, subCluster: subCluster, hostname: report.hostname, now: message.receivedAt)
                                ?? NodeHealth(state: "failed")
                        let observation = try nodes.apply(report, cluster: event.cluster, subCluster: subCluster, health: health, now: message.receivedAt)
                        if mirrorsToKV && observation.changed {
                            try Outbox(database).append(NodeStateMirror.put(observation, origin: message.origin, entry: "\(view.line).\(i)"))
                            counts.add("kv.nodes.puts")
                        }
                        return observation
                    }
                    pending.append(observation)
                    counts.add(observation.changed ? "nodes.changed" : "nodes.unchanged")
                    var b = JSONObjectBuilder()
                    b.add("entry", part)
                    b.add("hostname", report.hostname)
                    b.add("state", observation.state.rawValue)
                    b.add("flags", observation.slurm.description)
                    b.add("health", observation.health.state)
                    b.add("status", observation.changed ? "changed" : "unchanged")
                    results.append(.accepted(b.value))
                } catch let rejection as NodeRejection {
                    results.append(.rejected(column: column, code: rejection.code, reason: "\(part) (\(report.hostname)): \(rejection)", entry: part, raw: quoted))
                } catch let error as StoreError where !error.isTransient {
                    results.append(.rejected(column: column, code: "invalid_value", reason: "\(part) (\(report.hostname)): rejected by the database: \(error.message)",
                                             entry: part, raw: quoted))
                }
            }
        }
        return results
    }

    func committed() {
        if !pending.isEmpty { onCommit(pending) }
        pending.removeAll()
        counts.commit(to: counters)
    }

    func rolledBack() {
        pending.removeAll()
        counts.discard()
    }

    private var counts = BatchCounts()
}

/// Applies batches of node-state messages (see ``StageProcessor``).
public final class NodeProcessor: StageProcessor, @unchecked Sendable {
    /// The node stage.
    public let stage: NodeStage

    /// A processor over an open, migrated database; `onCommit` receives the observations of
    /// every committed batch (for health evaluation); with `mirrorsToKV` every change point is
    /// also put into the `clusterd_nodes` bucket through the outbox.
    public init(database: Database, clusters: Reloadable<ClusterRegistry>, probe: (any NodeHealthProbe)?, config: ClusterdConfig,
                counters: PipelineCounters, logger: Logger, mirrorsToKV: Bool = false,
                onCommit: @escaping @Sendable ([NodeObservation]) -> Void = { _ in }) {
        let stage = NodeStage(database: database, clusters: clusters.current)
        self.stage = stage
        let handler = NodeLineHandler(nodes: stage, database: database, counters: counters, onCommit: onCommit)
        handler.mirrorsToKV = mirrorsToKV
        handler.owned = Set(config.intake.clusters)
        handler.probe = probe
        super.init(database: database, handler: handler, config: config, counters: counters, logger: logger)
        beforeBatch = { stage.clusters = clusters.current }
    }

    /// All migrations of the tables this processor uses.
    public static let migrations = Outbox.migrations + PipelineSchema.migrations + NodeSchema.migrations
}
