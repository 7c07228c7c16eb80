import Foundation
import Model

/// The in-memory metric buffers, as cc-metric-store keeps them: a bounded ring per (host,
/// metric, scope, id) at a fixed resolution and retention, checkpointed to a file so a
/// restart keeps the history of running jobs. Thread-safe: written by the metric intake,
/// read by health probes and the archive.
public final class MetricStore: @unchecked Sendable {
    /// Seconds per slot.
    public let resolution: Int64
    /// Slots per series (retention / resolution).
    public let capacity: Int
    private let lock = NSLock()
    /// Series numbers by key; the rings by number.
    private var buffers: [SeriesKey: Int32] = [:]
    private var rings: [MetricBuffer] = []
    private var byHostMetric: [HostMetric: [SeriesKey]] = [:]
    private var dropped = 0

    /// Bytes per buffered sample (a 32-bit float).
    public static let bytesPerSample = MemoryLayout<Float>.size

    /// Series the store holds at most, in all; per cluster; of hosts no cluster.json or
    /// topology lists (each series costs `capacity` × 4 bytes, 5.6 KiB at the defaults).
    public struct Limits: Sendable {
        public var total: Int
        public var perCluster: Int
        public var unknownHosts: Int

        /// Limits; the defaults bound the buffers to about 560 MB.
        public init(total: Int = 100_000, perCluster: Int = 100_000, unknownHosts: Int = 1_000) {
            self.total = total
            self.perCluster = perCluster
            self.unknownHosts = unknownHosts
        }
    }

    /// The limits on new series.
    public let limits: Limits
    private var perCluster: [String: Int] = [:]
    private var unknownHostSeries = 0

    /// A store keeping `retention` seconds at `resolution` seconds per sample.
    public init(resolution: Int64, retention: Int64, limits: Limits = Limits()) {
        self.resolution = max(1, resolution)
        capacity = max(1, Int(retention / max(1, resolution)))
        self.limits = limits
    }

    /// Admits and writes in one step (one lock, one lookup — the metric path's cost): nil
    /// when the sample was kept (or was older than the retention, counted as dropped), else
    /// why its new series may not be created.
    public func record(_ key: SeriesKey, time: Int64, value: Double, knownHost: Bool) -> String? {
        lock.lock()
        defer { lock.unlock() }
        switch admitLocked(key, knownHost: knownHost) {
        case .success(let id): put(value, at: time, in: id)
        case .failure(let refusal): return refusal.reason
        }
        return nil
    }

    /// Why a new series was not created: a limit, named with its setting.
    public struct Refusal: Error, Sendable, Equatable {
        /// For the operator, e.g. "cluster fritz has its limit of 100000 series (metrics.max_series_per_cluster)".
        public let reason: String
    }

    /// The number of series `key`, created when new and within the limits; samples of it are
    /// then written by number (``write(_:)``), without the key.
    public func admit(_ key: SeriesKey, knownHost: Bool) -> Result<Int32, Refusal> {
        lock.lock()
        defer { lock.unlock() }
        return admitLocked(key, knownHost: knownHost)
    }

    private func admitLocked(_ key: SeriesKey, knownHost: Bool) -> Result<Int32, Refusal> {
        if let b = buffers[key] { return .success(b) }
        if let refusal = refusal(for: key, knownHost: knownHost) { return .failure(Refusal(reason: refusal)) }
        if !knownHost { unknownHostSeries += 1 }
        return .success(create(key))
    }

    /// Writes samples of series already admitted, by number, under one lock (the metric
    /// path's steady state: one call per message).
    public func write(_ samples: [SeriesSample]) {
        lock.lock()
        defer { lock.unlock() }
        // A collector stamps a whole read with one time: its slot is worked out once. Locals
        // for the loop: no exclusivity or uniqueness check per sample.
        var lastTime: Int64 = 0, lastSlot: Int64 = 0, lost = 0
        let resolution = resolution
        rings.withUnsafeMutableBufferPointer { rings in
            for s in samples {
                if s.time != lastTime {
                    lastTime = s.time
                    lastSlot = s.time / resolution
                }
                if !rings[Int(s.series)].write(slot: lastSlot, Float(s.value)) { lost += 1 }
            }
        }
        dropped += lost
    }

    /// Why a new series `key` may not be created (a limit reached); nil when it may. Under the lock.
    private func refusal(for key: SeriesKey, knownHost: Bool) -> String? {
        if buffers.count >= limits.total { return "the metric buffers hold their limit of \(limits.total) series (metrics.max_series)" }
        if perCluster[key.cluster, default: 0] >= limits.perCluster {
            return "cluster \(key.cluster) has its limit of \(limits.perCluster) series (metrics.max_series_per_cluster)"
        }
        if !knownHost && unknownHostSeries >= limits.unknownHosts {
            return "host \(key.host) is in no cluster.json and not in the topology, and such hosts have their limit of \(limits.unknownHosts) series (metrics.max_unknown_host_series)"
        }
        return nil
    }

    /// A new, empty series `key` (under the lock).
    @discardableResult
    private func create(_ key: SeriesKey) -> Int32 {
        let id = Int32(rings.count)
        rings.append(MetricBuffer(capacity: capacity))
        buffers[key] = id
        perCluster[key.cluster, default: 0] += 1
        byHostMetric[HostMetric(cluster: key.cluster, host: key.host, metric: key.metric), default: []].append(key)
        return id
    }

    deinit { for ring in rings { ring.deallocate() } }

    /// Records one value at `time` (epoch seconds). Returns false when it is older than the
    /// retention (dropped).
    @discardableResult
    public func write(_ key: SeriesKey, time: Int64, value: Double) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return put(value, at: time, in: buffers[key] ?? create(key))
    }

    /// Writes one value into series `id`'s ring (under the lock); false, and counted as
    /// dropped, when it is older than the retention.
    @discardableResult
    private func put(_ value: Double, at time: Int64, in id: Int32) -> Bool {
        let ok = rings[Int(id)].write(slot: time / resolution, Float(value))
        if !ok { dropped += 1 }
        return ok
    }

    /// Values of `key` from `from` to `to` (epoch seconds, inclusive), one per slot, NaN where missing.
    public func read(_ key: SeriesKey, from: Int64, to: Int64) -> [Float] {
        lock.lock()
        defer { lock.unlock() }
        return buffers[key].map { rings[Int($0)].read(from: from / resolution, to: to / resolution) } ?? []
    }

    /// Every series buffered.
    public var allSeries: [SeriesKey] { lock.withLock { Array(buffers.keys) } }

    /// Every series of a host's metric (all scopes and ids).
    public func series(cluster: String, host: String, metric: String) -> [SeriesKey] {
        lock.lock()
        defer { lock.unlock() }
        return byHostMetric[HostMetric(cluster: cluster, host: host, metric: metric)] ?? []
    }

    /// Every (cluster, host) with buffered series.
    public var hosts: Set<HostKey> {
        lock.withLock { Set(byHostMetric.keys.map { HostKey(cluster: $0.cluster, host: $0.host) }) }
    }

    /// A host of a cluster.
    public struct HostKey: Hashable, Sendable {
        public let cluster: String
        public let host: String
    }

    /// Time (epoch seconds) of the newest sample of a host's metric in any scope, nil when none.
    public func newest(cluster: String, host: String, metric: String) -> Int64? {
        lock.lock()
        defer { lock.unlock() }
        let keys = byHostMetric[HostMetric(cluster: cluster, host: host, metric: metric)] ?? []
        let slots = keys.compactMap { buffers[$0].map { rings[Int($0)].newest } }.filter { $0 != .min }
        return slots.max().map { $0 * resolution }
    }

    /// Number of series, buffered bytes of samples, and samples dropped as too old.
    public var usage: (series: Int, sampleBytes: Int, dropped: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (buffers.count, buffers.count * capacity * Self.bytesPerSample, dropped)
    }

    // MARK: checkpoint

    static let magic = Array("CLUSTERD-METRICS-1\n".utf8)

    /// Writes every series to `path` atomically (temporary file, fsync, rename), 1,024 series
    /// at a time: the lock is held while a chunk is copied (the metric path waits
    /// milliseconds, not the whole write) and memory grows by a chunk, not by a copy of every
    /// ring (230 MB for 40,000 series at the defaults). Each series is as it was when copied.
    public func checkpoint(to path: String) throws {
        let temp = path + ".tmp"
        guard FileManager.default.createFile(atPath: temp, contents: nil) else { throw CheckpointError("cannot create \(temp)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temp))
        defer { try? handle.close() }
        var out: [UInt8] = Self.magic
        func int(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        let keys = lock.withLock { Array(buffers) }
        int(resolution)
        int(Int64(capacity))
        int(Int64(keys.count))
        var next = 0
        while next < keys.count {
            let chunk = keys[next..<min(keys.count, next + 1024)]
            next = chunk.endIndex
            lock.withLock {
                for (key, id) in chunk {
                    for s in [key.cluster, key.host, key.metric, key.scope, key.id] {
                        int(Int64(s.utf8.count))
                        out.append(contentsOf: s.utf8)
                    }
                    let ring = rings[Int(id)]
                    int(ring.newest)
                    // Floats as their little-endian bit patterns (the host's order on x86 and arm64).
                    out.append(contentsOf: UnsafeRawBufferPointer(ring.values))
                }
            }
            try handle.write(contentsOf: out)
            out.removeAll(keepingCapacity: true)
        }
        // No series: the header alone (an empty file is not a checkpoint).
        if !out.isEmpty { try handle.write(contentsOf: out) }
        try handle.synchronize()
        if rename(temp, path) != 0 { throw CheckpointError("cannot rename \(temp) to \(path): errno \(errno)") }
    }

    /// Why a checkpoint could not be written or read.
    public struct CheckpointError: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// Loads the series of a checkpoint written with the same resolution and capacity; series
    /// whose newest sample is older than `now` − retention are skipped. Returns how many
    /// series were restored (0 when the file does not exist).
    @discardableResult
    public func restore(from path: String, now: Int64) throws -> Int {
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        let bytes = [UInt8](data)
        var at = 0
        func need(_ n: Int) throws {
            if at + n > bytes.count { throw CheckpointError("\(path): truncated at byte \(at)") }
        }
        func int() throws -> Int64 {
            try need(8)
            var v: Int64 = 0
            withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: bytes[at..<at + 8]) }
            at += 8
            return Int64(littleEndian: v)
        }
        func string() throws -> String {
            let n = Int(try int())
            try need(n)
            defer { at += n }
            return String(decoding: bytes[at..<at + n], as: UTF8.self)
        }
        guard bytes.starts(with: Self.magic) else { throw CheckpointError("\(path): not a clusterd metric checkpoint") }
        at = Self.magic.count
        let res = try int()
        let cap = Int(try int())
        guard res == resolution, cap == capacity else {
            throw CheckpointError("\(path): written at \(res) s × \(cap) slots, configured \(resolution) s × \(capacity); not restored")
        }
        let count = try int()
        var restored = 0
        lock.lock()
        defer { lock.unlock() }
        for _ in 0..<count {
            let key = SeriesKey(cluster: try string(), host: try string(), metric: try string(), scope: try string(), id: try string())
            let newest = try int()
            try need(cap * 4)
            let range = at..<at + cap * 4
            at += cap * 4
            guard newest != .min, (newest + 1) * resolution > now - Int64(cap) * resolution else { continue }
            // Restored within the total limit (a lowered limit keeps the first series).
            guard buffers[key] != nil || buffers.count < limits.total else { continue }
            let id = buffers[key] ?? create(key)
            bytes[range].withUnsafeBytes { rings[Int(id)].restore(newest: newest, from: $0) }
            restored += 1
        }
        return restored
    }
}
