import ArgumentParser
import Bus
import Foundation
import Health
import Intake
import MetricBuffers
import Pipeline

/// Metric lines per second through the metric path — decode, buffer, health evaluation —
/// and the memory a buffered sample costs. Runs in-process on generated cc-metric-collector
/// messages (the bus delivers them to the same code one message at a time).
struct HealthBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Time metric lines through decoding, the metric buffers and the checks library; print lines/s and bytes per sample."
    )

    @Option(help: "Hosts sending metrics.") var hosts = 1000
    @Option(help: "Collector intervals to replay (each: every host sends every metric).") var rounds = 20
    @Option(help: "Checks library.") var checks = "config/checks.yaml"
    @Option(help: "Topology.") var topology = "config/topology.yaml"
    @Option(help: "Buffer resolution (s) and retention (h), as metrics.resolution_seconds / retention_hours.") var resolution = 60
    @Option var retentionHours = 24

    func run() throws {
        let library = try CheckLibrary(contentsOf: checks)
        let topo = try Topology(contentsOf: topology)
        // One message per host and round, as cc-metric-collector's sink batches a host's lines:
        // node metrics, 72 hardware threads of cpu_user, 4 GPUs with temperature and utilisation.
        let t0 = Int(Date().timeIntervalSince1970) - rounds * 60
        var messages: [BusMessage] = []
        var lines = 0
        for r in 0..<rounds {
            for h in 0..<hosts {
                let host = "f\(String(1000 + h).suffix(4))"
                let t = t0 + r * 60
                var body = ""
                for metric in ["cpu_load", "mem_used", "flops_any", "mem_bw", "net_bw", "ib_recv", "ib_xmit", "lustre_read_bw"] {
                    body += "\(metric),cluster=fritz,hostname=\(host),type=node value=\(Double((h * 7 + r) % 100) + 0.5) \(t)\n"
                }
                for thread in 0..<72 {
                    body += "cpu_user,cluster=fritz,hostname=\(host),type=hwthread,type-id=\(thread),unit=Percent value=\((thread + r) % 100) \(t)\n"
                }
                for gpu in 0..<4 {
                    body += "nv_temp,cluster=fritz,hostname=\(host),type=accelerator,type-id=\(gpu) value=\(60 + (h + gpu + r) % 40) \(t)\n"
                    body += "nv_util,cluster=fritz,hostname=\(host),type=accelerator,type-id=\(gpu) value=\((h * gpu + r) % 100) \(t)\n"
                }
                lines += 8 + 72 + 8
                messages.append(BusMessage(subject: "cc.metrics.fritz", data: Array(body.utf8)))
            }
        }
        let bytes = messages.reduce(0) { $0 + $1.data.count }
        print("\(messages.count) messages, \(lines) lines, \(bytes / 1_000_000) MB (\(hosts) hosts × \(rounds) rounds)")

        var decoded: [[MetricSample]] = []
        var refused = 0
        let decodeTime = time {
            // Each round is decoded at its own time, as it would arrive (a later round decoded
            // at t0 would be refused as in_the_future).
            decoded = messages.enumerated().map { i, message in
                let (samples, letters) = MetricIntake.decode(message, defaultCluster: "", now: Int64(t0 + (i / hosts) * 60))
                refused += letters.count
                return samples
            }
        }
        report("decode", lines, decodeTime)
        if refused > 0 { print("warning: \(refused) lines refused by the decoder; the figures below miss them") }

        let rssBefore = Self.residentBytes()
        let store = MetricStore(resolution: Int64(resolution), retention: Int64(retentionHours) * 3600,
                                limits: .init(total: .max, perCluster: .max, unknownHosts: .max))
        // As `clusterd run` does: each sample admitted (series limits) and written in one step.
        func write(_ batches: ArraySlice<[MetricSample]>) {
            for batch in batches {
                for s in batch { _ = store.record(s.seriesKey, time: s.time, value: s.value, knownHost: true) }
            }
        }
        // The first round allocates every ring (page faults dominate); later rounds are the steady state.
        let firstTime = time { write(decoded[0..<hosts]) }
        report("buffer first round", lines / rounds, firstTime)
        let storeTime = time { write(decoded[hosts...]) }
        report("buffer write", lines - lines / rounds, storeTime)
        // The same samples again without the admission check: what admission costs, same run.
        let plainTime = time {
            for batch in decoded[hosts...] { for s in batch { store.write(s.seriesKey, time: s.time, value: s.value) } }
        }
        report("  (no admission)", lines - lines / rounds, plainTime)
        let usage = store.usage
        let rss = Self.residentBytes() - rssBefore
        print("buffers: \(usage.series) series × \(store.capacity) samples × \(MetricStore.bytesPerSample) B = \(usage.sampleBytes / 1_000_000) MB of samples; resident growth \(rss / 1_000_000) MB → \(String(format: "%.2f", Double(rss) / Double(usage.series * store.capacity))) B per buffered sample, \(String(format: "%.0f", Double(rss - usage.sampleBytes) / Double(usage.series))) B overhead per series")

        let engine = HealthEngine(library: library, topology: topo, now: Int64(t0))
        let evalTime = time {
            for (i, batch) in decoded.enumerated() {
                let now = Int64(t0 + (i / hosts) * 60)
                for s in batch { engine.ingest(s, now: now) }
            }
            engine.tick(now: Int64(t0 + rounds * 60))
        }
        report("health evaluation", lines, evalTime)
        print("transitions: \(engine.takeTransitions().count) (checks: \(library.checks.count), watched metrics: \(engine.watchedMetrics.sorted().joined(separator: ",")))")
        report("steady, all three", lines, decodeTime + storeTime * Double(rounds) / Double(max(1, rounds - 1)) + evalTime)
    }

    func time(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    func report(_ what: String, _ lines: Int, _ seconds: Double) {
        print("\(what.padding(toLength: 18, withPad: " ", startingAt: 0)) \(String(format: "%8.3f", seconds)) s  \(String(format: "%10.0f", Double(lines) / seconds)) lines/s")
    }

    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }
}
