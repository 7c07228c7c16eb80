import Model
import Store

/// What one applied node entry means: the node's state now, and whether it changed.
public struct NodeObservation: Sendable, Equatable {
    /// Cluster, subcluster and host.
    public var cluster: String
    public var subCluster: String
    public var hostname: String
    /// cc-backend's reduced state, and every Slurm flag.
    public var state: SchedulerState
    public var slurm: SlurmState
    /// Monitoring health (full/partial/failed).
    public var health: NodeHealth
    /// Receive time, epoch seconds.
    public var at: Int64
    /// True when a new change point was written (first report, or state/flags/health differ).
    public var changed: Bool
}

/// A stored change point of a node.
public struct NodeStateRow: Sendable, Equatable {
    /// Since when (epoch s) and last confirmed (epoch s).
    public var since: Int64
    public var lastSeen: Int64
    public var state: SchedulerState
    public var flags: String
    public var healthState: String
    public var healthMetrics: String
    public var cpusAllocated: Int64
    public var memoryAllocated: Int64
    public var gpusAllocated: Int64
    public var jobsRunning: Int64
}

/// The node-state stage: places each reported node in its cluster and subcluster, keeps its
/// current state and its history of change points. The rules are pure (``place(_:cluster:)``,
/// ``decide(_:cluster:subCluster:health:current:now:)``: values in, values out, time passed
/// in); the metric health is an input, computed by the caller; ``apply`` is the table code.
public final class NodeStage: @unchecked Sendable {
    let database: Database
    /// The known clusters (replaced between batches by a configuration reload).
    public var clusters: ClusterRegistry

    /// A stage over a migrated database.
    public init(database: Database, clusters: ClusterRegistry) {
        self.database = database
        self.clusters = clusters
    }

    /// The subcluster of a reported node (cc-backend's placement by host list).
    public func place(_ report: NodeReport, cluster: String) throws(NodeRejection) -> String {
        guard let config = clusters[cluster] else {
            throw NodeRejection.unknownCluster("cluster \"\(cluster)\" has no cluster.json (known: \(clusters.clusters.keys.sorted().joined(separator: ", ")))")
        }
        guard let sub = config.subCluster(named: "", forHost: report.hostname) else {
            throw NodeRejection.unknownHost("host \(report.hostname) is in no subcluster of \(cluster)")
        }
        return sub.name
    }

    /// The decision for one entry: the node's state now and whether it is a new change
    /// point. Down nodes are not checked (cc-backend): full health whatever `health` says.
    /// `current` is the node's newest change point (state, flags, health), nil for a new node.
    public static func decide(_ report: NodeReport, cluster: String, subCluster: String, health: NodeHealth,
                              current: (state: String, flags: String, health: String)?, now: Int64) -> NodeObservation {
        let state = report.schedulerState
        let slurm = report.slurm
        let health = state == .down ? NodeHealth(state: "full") : health
        let same = current.map { $0.state == state.rawValue && $0.flags == slurm.description && $0.health == health.state } ?? false
        return NodeObservation(cluster: cluster, subCluster: subCluster, hostname: report.hostname, state: state, slurm: slurm,
                               health: health, at: now, changed: !same)
    }

    /// Applies one node entry of a `nodestate` event received at `now`, with its metric
    /// `health` (cc-backend without a metric store: `failed`).
    public func apply(_ report: NodeReport, cluster: String, subCluster: String, health: NodeHealth, now: Int64) throws -> NodeObservation {
        let nodeID = try database.prepare("""
            INSERT INTO node (hostname, cluster, subcluster) VALUES (?, ?, ?)
            ON CONFLICT (hostname, cluster) DO UPDATE SET subcluster = excluded.subcluster RETURNING id
            """).first([.text(report.hostname), .text(cluster), .text(subCluster)]) { $0.int(0) } ?? 0
        let current = try database.prepare("""
            SELECT id, node_state, slurm_flags, health_state FROM node_state WHERE node_id = ? ORDER BY time_stamp DESC, id DESC LIMIT 1
            """).first([.integer(nodeID)]) { row in (id: row.int(0), state: row.text(1), flags: row.text(2), health: row.text(3)) }
        let observation = Self.decide(report, cluster: cluster, subCluster: subCluster, health: health, current: current.map { (state: $0.state, flags: $0.flags, health: $0.health) }, now: now)
        let counts: [SQLValue] = [.integer(report.jobsRunning), .integer(report.cpusAllocated), .integer(report.memoryAllocated),
                                  .integer(report.gpusAllocated)]
        let metrics: SQLValue = observation.state == .down ? .text("") : .text(observation.health.metricsJSON)
        if let current, !observation.changed {
            try database.prepare("""
                UPDATE node_state SET last_seen = max(last_seen, ?), jobs_running = ?, cpus_allocated = ?, memory_allocated = ?,
                gpus_allocated = ?, health_metrics = ? WHERE id = ?
                """).run([.integer(now)] + counts + [metrics, .integer(current.id)])
        } else {
            try database.prepare("""
                INSERT INTO node_state (time_stamp, jobs_running, cpus_allocated, memory_allocated, gpus_allocated, node_state,
                health_state, health_metrics, node_id, slurm_flags, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).run([.integer(now)] + counts + [.text(observation.state.rawValue), .text(observation.health.state), metrics,
                                                     .integer(nodeID), .text(observation.slurm.description), .integer(now)])
        }
        return observation
    }

    /// The node's change points, oldest first.
    public func history(cluster: String, hostname: String) throws -> [NodeStateRow] {
        try database.prepare("""
            SELECT s.time_stamp, s.last_seen, s.node_state, s.slurm_flags, s.health_state, coalesce(s.health_metrics, ''),
                   s.cpus_allocated, s.memory_allocated, s.gpus_allocated, s.jobs_running
            FROM node_state s JOIN node n ON n.id = s.node_id WHERE n.cluster = ? AND n.hostname = ? ORDER BY s.time_stamp, s.id
            """).rows([.text(cluster), .text(hostname)]) { r in
            NodeStateRow(since: r.int(0), lastSeen: r.int(1), state: SchedulerState(rawValue: r.text(2)) ?? .unknown, flags: r.text(3),
                         healthState: r.text(4), healthMetrics: r.text(5), cpusAllocated: r.int(6), memoryAllocated: r.int(7),
                         gpusAllocated: r.int(8), jobsRunning: r.int(9))
        }
    }

    /// The node's current state (its newest change point).
    public func current(cluster: String, hostname: String) throws -> NodeStateRow? {
        try history(cluster: cluster, hostname: hostname).last
    }

    /// Deletes change points last seen before `cutoff`, always keeping each node's newest
    /// row. Returns how many were deleted.
    @discardableResult
    public func prune(before cutoff: Int64) throws -> Int {
        try database.prepare("""
            DELETE FROM node_state WHERE last_seen < ? AND id NOT IN (
                SELECT (SELECT id FROM node_state s WHERE s.node_id = n.id ORDER BY time_stamp DESC, id DESC LIMIT 1) FROM node n)
            """).run([.integer(cutoff)])
        return Int(database.changes)
    }
}
