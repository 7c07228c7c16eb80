import MetricBuffers
import Model
import Nodes
@testable import Pipeline
@testable import Processing
import Testing

/// Node health as cc-backend computes it, on clusterd's metric buffers.
@Suite(.timeLimit(.minutes(3))) struct MetricHealthProbeTests {
    @Test func missingDegradedAndHealthyMetricsGiveFullPartialOrFailed() throws {
        let clusters = ClusterRegistry([try ClusterConfig(contentsOf: Repository.path("config/clusters/fritz/cluster.json"))])
        let names = try #require(clusters["fritz"]).metrics(of: "main").map(\.name)
        let store = MetricStore(resolution: 60, retention: 86_400)
        let probe = MetricHealthProbe(store: store, clusters: Reloadable(clusters))
        let now: Int64 = 1_800_000_000
        #expect(probe.health(cluster: "fritz", subCluster: "main", hostname: "f0101", now: now) == NodeHealth(state: "failed", missing: names))
        for name in names {
            store.write(SeriesKey(cluster: "fritz", host: "f0101", metric: name, scope: "node", id: ""), time: now - 60, value: 1)
        }
        #expect(probe.health(cluster: "fritz", subCluster: "main", hostname: "f0101", now: now).state == "full")
        // Five timesteps (60 s) without a sample: degraded; the rest healthy → partial.
        store.write(SeriesKey(cluster: "fritz", host: "f0102", metric: names[0], scope: "node", id: ""), time: now - 400, value: 1)
        store.write(SeriesKey(cluster: "fritz", host: "f0102", metric: names[1], scope: "node", id: ""), time: now, value: 1)
        let partial = probe.health(cluster: "fritz", subCluster: "main", hostname: "f0102", now: now)
        #expect(partial.state == "partial" && partial.degraded == [names[0]] && partial.missing == Array(names.dropFirst(2)))
        #expect(partial.metricsJSON.hasPrefix("{\"missing\":[\""))
        #expect(probe.health(cluster: "nowhere", subCluster: "x", hostname: "h", now: now).state == "failed")
    }
}
