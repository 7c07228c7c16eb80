import Foundation
import Health
import Jobs
import MetricBuffers
import Model
import Store

/// A checks library tried on what clusterd recorded (`clusterd backtest`): the node-state
/// history, the job stops and the buffered metric samples of a window, replayed in time order
/// through the pure health decisions — the alerts the library would have raised and resolved,
/// beside what the live library did (`alert_transition`).
public struct Backtest {
    /// Fired and resolved transitions of one check.
    public struct Counts: Sendable, Equatable {
        public var fired = 0
        public var resolved = 0

        /// Counts.
        public init(fired: Int = 0, resolved: Int = 0) {
            self.fired = fired
            self.resolved = resolved
        }
    }

    let database: Database
    let store: MetricStore?
    let topology: Topology
    let from: Int64
    let to: Int64

    /// The inputs of `database` (read-only) and `store` (restored from the checkpoint) between
    /// `from` and `to` (epoch seconds), placed on `topology`.
    public init(database: Database, store: MetricStore?, topology: Topology, from: Int64, to: Int64) {
        self.database = database
        self.store = store
        self.topology = topology
        self.from = from
        self.to = to
    }

    /// How many node-state changes and job stops the window holds.
    public func inputs() throws -> (nodeStates: Int64, jobStops: Int64) {
        (try database.prepare("SELECT count(*) FROM node_state WHERE time_stamp >= ? AND time_stamp <= ?").first([.integer(from), .integer(to)]) { $0.int(0) } ?? 0,
         try database.prepare("SELECT count(*) FROM job WHERE job_state <> 'running' AND start_time + duration >= ? AND start_time + duration <= ?")
            .first([.integer(from), .integer(to)]) { $0.int(0) } ?? 0)
    }

    /// The transitions `library` gives for the window's inputs, by check id. The replay starts
    /// with nothing firing and steps one metric resolution (or minute) at a time.
    public func run(_ library: CheckLibrary) throws -> [String: Counts] {
        let engine = HealthEngine(library: library, topology: topology, now: from)
        let step = store?.resolution ?? 60
        let states = try database.prepare("""
            SELECT s.time_stamp, n.cluster, n.hostname, s.slurm_flags FROM node_state s JOIN node n ON n.id = s.node_id
            WHERE s.time_stamp >= ? AND s.time_stamp <= ? ORDER BY s.time_stamp, s.id
            """).rows([.integer(from), .integer(to)]) { r in
            (time: r.int(0), status: NodeStatus(cluster: r.text(1), hostname: r.text(2), flags: r.text(3).split(separator: "+").map(String.init)))
        }
        let stops = try database.prepare("""
            SELECT id FROM job WHERE job_state <> 'running' AND start_time + duration >= ? AND start_time + duration <= ? ORDER BY start_time + duration
            """).rows([.integer(from), .integer(to)]) { $0.int(0) }
        // As the live path sees a stopped job (read only: the stage's writes are never called).
        let stage = JobStage(database: database, clusters: ClusterRegistry([]))
        let exits = try stops.map { HealthLoop.exit(try stage.load(id: $0)) }
        // Every series' samples of the window, slot by slot.
        var series: [(number: Int32, values: [Float])] = []
        if let store {
            for (i, key) in store.allSeries.sorted(by: { "\($0)" < "\($1)" }).enumerated() {
                let values = store.read(key, from: from, to: to)
                guard values.contains(where: { !$0.isNaN }) else { continue }
                engine.register(series: Int32(i), as: MetricSample(cluster: key.cluster, hostname: key.host, name: key.metric,
                                                                   tags: [("type", key.scope), ("type-id", key.id)], value: 0, time: from))
                series.append((Int32(i), values))
            }
        }
        var counts: [String: Counts] = [:]
        var nextState = 0, nextExit = 0, slot = 0
        var t = from - from % step
        while t - step < to {  // the last step reaches `to`: inputs of its last minute count
            while nextState < states.count, states[nextState].time <= t {
                engine.observe(states[nextState].status, now: states[nextState].time)
                nextState += 1
            }
            while nextExit < exits.count, exits[nextExit].stopTime <= t {
                engine.jobEnded(exits[nextExit], now: exits[nextExit].stopTime)
                nextExit += 1
            }
            let samples = series.compactMap { s -> SeriesSample? in
                slot < s.values.count && !s.values[slot].isNaN ? SeriesSample(series: s.number, time: t, value: Double(s.values[slot])) : nil
            }
            if !samples.isEmpty { engine.ingest(series: samples, now: t) }
            engine.tick(now: t)
            for transition in engine.takeTransitions() {
                if transition.status == .firing { counts[transition.key.check, default: Counts()].fired += 1 } else {
                    counts[transition.key.check, default: Counts()].resolved += 1
                }
            }
            t += step
            slot += 1
        }
        return counts
    }

    /// What the live library did in the window: its recorded transitions, by check id.
    public func recorded() throws -> [String: Counts] {
        var counts: [String: Counts] = [:]
        for (check, status) in try database.prepare("""
            SELECT a.check_id, t.status FROM alert_transition t JOIN alert a ON a.fingerprint = t.fingerprint WHERE t.at >= ? AND t.at <= ?
            """).rows([.integer(from), .integer(to)], { ($0.text(0), $0.text(1)) }) {
            if status == "firing" { counts[check, default: Counts()].fired += 1 } else { counts[check, default: Counts()].resolved += 1 }
        }
        return counts
    }
}
