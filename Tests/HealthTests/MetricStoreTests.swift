import Foundation
import MetricBuffers
import Model
import Testing

/// The metric buffers: bounded rings, gaps, checkpoints, a job's data and statistics.
@Suite(.timeLimit(.minutes(3))) struct MetricStoreTests {
    static let key = SeriesKey(cluster: "alex", host: "a0603", metric: "cpu_load", scope: "node", id: "")

    @Test func ringKeepsTheNewestSlotsMarksGapsAndDropsTooOld() {
        let store = MetricStore(resolution: 10, retention: 60)       // 6 slots
        #expect(store.capacity == 6)
        for t in stride(from: 1000, through: 1050, by: 10) { store.write(Self.key, time: Int64(t), value: Double(t - 1000)) }
        #expect(store.read(Self.key, from: 1000, to: 1050) == [0, 10, 20, 30, 40, 50])
        store.write(Self.key, time: 1085, value: 85)                  // skips 1060 and 1070
        let r = store.read(Self.key, from: 1030, to: 1080)
        #expect(r[0] == 30 && r[1] == 40 && r[2] == 50 && r[3].isNaN && r[4].isNaN && r[5] == 85)
        #expect(store.read(Self.key, from: 1020, to: 1020)[0].isNaN)   // overwritten by the ring
        #expect(!store.write(Self.key, time: 1000, value: 1))         // older than retention
        store.write(Self.key, time: 1065, value: 65)                  // late, inside the window
        #expect(store.read(Self.key, from: 1060, to: 1060) == [65])
        #expect(store.usage.sampleBytes == 6 * MetricStore.bytesPerSample && store.usage.dropped == 1)
        #expect(store.newest(cluster: "alex", host: "a0603", metric: "cpu_load") == 1080)
    }

    @Test func checkpointRestoresEverySeries() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = MetricStore(resolution: 10, retention: 3600)
        let gpu = SeriesKey(cluster: "alex", host: "a0603", metric: "nv_temp", scope: "accelerator", id: "00000000:0E:00.0")
        for t in stride(from: Int64(10_000), to: 10_600, by: 10) {
            store.write(Self.key, time: t, value: Double(t % 97))
            store.write(gpu, time: t, value: 60.5)
        }
        try store.checkpoint(to: path)
        let restored = MetricStore(resolution: 10, retention: 3600)
        #expect(try restored.restore(from: path, now: 10_600) == 2)
        #expect(restored.read(Self.key, from: 10_000, to: 10_590) == store.read(Self.key, from: 10_000, to: 10_590))
        #expect(restored.series(cluster: "alex", host: "a0603", metric: "nv_temp") == [gpu])
        // Too old by now: nothing comes back. Another resolution: refused, not misread.
        #expect(try MetricStore(resolution: 10, retention: 3600).restore(from: path, now: 20_000) == 0)
        #expect(throws: MetricStore.CheckpointError.self) { try MetricStore(resolution: 60, retention: 3600).restore(from: path, now: 10_600) }
    }

    /// A store without a series checkpoints its header: the file restores to nothing (it was
    /// an empty file, which the next start and `clusterd backtest` refused as "not a checkpoint").
    @Test func anEmptyStoresCheckpointRestoresToNothing() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try MetricStore(resolution: 10, retention: 3600).checkpoint(to: path)
        #expect(try MetricStore(resolution: 10, retention: 3600).restore(from: path, now: 10_600) == 0)
    }

    /// More series than one chunk of the checkpoint (1,024): every one comes back as written.
    @Test func aCheckpointOfManyChunksRestoresEverySeries() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = MetricStore(resolution: 60, retention: 3600)
        let keys = (0..<2500).map { SeriesKey(cluster: "fritz", host: "f\($0 / 10)", metric: "cpu_user", scope: "hwthread", id: "\($0 % 10)") }
        for (i, key) in keys.enumerated() {
            for t in stride(from: Int64(60_000), to: 60_000 + Int64(i % 7 + 1) * 60, by: 60) { store.write(key, time: t, value: Double(i) + Double(t) / 1e5) }
        }
        try store.checkpoint(to: path)
        let restored = MetricStore(resolution: 60, retention: 3600)
        #expect(try restored.restore(from: path, now: 60_500) == keys.count)
        for key in keys {  // bit patterns: NaN (no sample) equals NaN
            #expect(restored.read(key, from: 60_000, to: 60_420).map(\.bitPattern) == store.read(key, from: 60_000, to: 60_420).map(\.bitPattern), "\(key)")
        }
    }

    @Test func jobDataHasNodeAndNativeScopesAndCCBackendStatistics() throws {
        let store = MetricStore(resolution: 10, retention: 3600)
        for t in stride(from: Int64(1000), through: 1100, by: 10) {
            store.write(SeriesKey(cluster: "c", host: "n1", metric: "load", scope: "node", id: ""), time: t, value: 2)
            store.write(SeriesKey(cluster: "c", host: "n2", metric: "load", scope: "node", id: ""), time: t, value: 4)
            for thread in 0..<4 {
                store.write(SeriesKey(cluster: "c", host: "n1", metric: "user", scope: "hwthread", id: "\(thread)"), time: t, value: Double(10 * thread))
            }
        }
        let cluster = try ClusterConfig(document: Array("""
            {"name": "c", "metricConfig": [
              {"name": "load", "unit": {"base": ""}, "scope": "node", "timestep": 10, "aggregation": "avg", "footprint": "avg"},
              {"name": "user", "unit": {"base": ""}, "scope": "hwthread", "timestep": 10, "aggregation": "avg"},
              {"name": "absent", "unit": {"base": "B"}, "scope": "node", "timestep": 10, "aggregation": "sum"}],
             "subClusters": [{"name": "main", "nodes": "n[1-2]"}]}
            """.utf8), file: "c.json")
        let job = JobWindow(cluster: "c", subCluster: "main",
                            hosts: [.init(hostname: "n1", hwthreads: [1, 3]), .init(hostname: "n2")], start: 1000, stop: 1100)
        #expect(JobDataBuilder(store: MetricStore(resolution: 10, retention: 3600)).build(job, cluster: cluster) == nil)
        let m = try #require(JobDataBuilder(store: store).build(job, cluster: cluster))
        // Σ node avg / numNodes: (2 + 4) / 2; the absent metric is left out.
        #expect(m.statistics["load"]?["avg"] == .double(3))
        #expect(m.statistics["load"]?["max"] == .double(4))
        #expect(m.statistics["absent"] == nil)
        #expect(m.footprint.map(\.key) == ["load_avg"])
        // hwthread scope: only the job's threads 1 and 3, their node value the average (20).
        guard case .array(let threads)? = m.data["user"]?["hwthread"]?["series"] else { throw Failure("no hwthread series") }
        #expect(threads.map { $0["id"]?.stringValue ?? "" } == ["1", "3"])
        #expect(m.data["user"]?["node"]?["series"].map { v -> JSONValue? in if case .array(let a) = v { return a.first?["statistics"]?["avg"] }; return nil } == .double(20))
        #expect(m.data["load"]?["node"]?["timestep"] == .integer(10))
    }

    /// Issue 20 #2: a counter metric (`metrics.counters`) appears in data.json and the
    /// statistics as its per-second rate, across a reset and a gap.
    @Test func aCounterMetricsJobDataIsItsRate() throws {
        let store = MetricStore(resolution: 10, retention: 3600)
        let key = SeriesKey(cluster: "c", host: "n1", metric: "ib_recv", scope: "node", id: "")
        // 100 B/s from t=990 (the slot before the job) to 1030, a reset at 1040 (counter 500),
        // a missing slot at 1050, then 1,000 at 1060 (500 over 20 s: 25 B/s).
        for (t, v) in [(990, 1_000), (1000, 2_000), (1010, 3_000), (1020, 4_000), (1030, 5_000), (1040, 500), (1060, 1_000)] {
            _ = store.write(key, time: Int64(t), value: Double(v))
        }
        let cluster = try ClusterConfig(document: Array("""
            {"name": "c", "metricConfig": [{"name": "ib_recv", "unit": {"base": "B/s"}, "scope": "node", "timestep": 10, "aggregation": "sum"}],
             "subClusters": [{"name": "main", "nodes": "n1"}]}
            """.utf8), file: "c.json")
        let job = JobWindow(cluster: "c", subCluster: "main", hosts: [.init(hostname: "n1")], start: 1000, stop: 1060)
        let m = try #require(JobDataBuilder(store: store, counters: ["ib_recv"]).build(job, cluster: cluster))
        guard case .array(let series)? = m.data["ib_recv"]?["node"]?["series"], case .array(let values)? = series.first?["data"] else {
            throw Failure("no node series")
        }
        // 1000…1030: 100 B/s; 1040: the reset, 500 in 10 s; 1050: none; 1060: 25 B/s.
        #expect(values.map { v -> Double in if case .double(let d) = v { d } else { -1 } } == [100, 100, 100, 100, 50, -1, 25], "\(values)")
        #expect(m.statistics["ib_recv"]?["max"] == .double(100))
        // Not a counter: the raw values.
        let raw = try #require(JobDataBuilder(store: store).build(job, cluster: cluster))
        #expect(raw.statistics["ib_recv"]?["max"] == .double(5_000))
    }

    /// Issue 16's second reproduction: a year-long window sized its series from the job's
    /// length (66 GB for a 10^12 s window). It is bounded by what the buffers can hold.
    @Test func aJobLongerThanTheBuffersGetsTheirRetentionNotItsLength() throws {
        let store = MetricStore(resolution: 60, retention: 86_400)
        let stop: Int64 = 1_700_000_000
        for t in stride(from: stop - 600, through: stop, by: 60) {
            store.write(SeriesKey(cluster: "c", host: "n1", metric: "load", scope: "node", id: ""), time: t, value: 1)
        }
        let cluster = try ClusterConfig(document: Array("""
            {"name": "c", "metricConfig": [{"name": "load", "unit": {"base": ""}, "scope": "node", "timestep": 60, "aggregation": "avg"}],
             "subClusters": [{"name": "main", "nodes": "n1"}]}
            """.utf8), file: "c.json")
        let job = JobWindow(cluster: "c", subCluster: "main", hosts: [.init(hostname: "n1")], start: stop - 366 * 86_400, stop: stop)
        let m = try #require(JobDataBuilder(store: store).build(job, cluster: cluster))
        guard case .array(let series)? = m.data["load"]?["node"]?["series"], case .array(let values)? = series.first?["data"] else {
            throw Failure("no node series")
        }
        #expect(values.count <= store.capacity + 1)
        #expect(m.statistics["load"]?["avg"] == .double(1))
    }

    struct Failure: Error { let message: String; init(_ m: String) { message = m } }
}
