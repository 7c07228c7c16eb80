import MetricBuffers
import Model
import Nodes

/// cc-backend's node health check on clusterd's own buffers: each metric the node's
/// subcluster defines is missing (no series), degraded (newest sample older than five of its
/// timesteps) or healthy.
package struct MetricHealthProbe: NodeHealthProbe {
    package let store: MetricStore
    package let clusters: Reloadable<ClusterRegistry>

    /// A probe of `store` for the clusters `clusters` knows.
    package init(store: MetricStore, clusters: Reloadable<ClusterRegistry>) {
        self.store = store
        self.clusters = clusters
    }

    package func health(cluster: String, subCluster: String, hostname: String, now: Int64) -> NodeHealth {
        guard let config = clusters.current[cluster] else { return NodeHealth(state: "failed") }
        let expected = config.metrics(of: subCluster)
        var missing: [String] = []
        var degraded: [String] = []
        for metric in expected {
            guard let newest = store.newest(cluster: cluster, host: hostname, metric: metric.name) else {
                missing.append(metric.name)
                continue
            }
            if now - newest > 5 * max(metric.timestep, store.resolution) { degraded.append(metric.name) }
        }
        return NodeHealth(expected: expected.count, missing: missing, degraded: degraded)
    }
}
