import ArgumentParser
import Bus
import Config
import Foundation
import Logging
import NATSServerProcess
import Pipeline

/// Metric lines per second from NATS through `clusterd run`'s metric path (decode, admission,
/// buffers, the checks), against the wire limit measured in the same run: a bare subscriber
/// on the same `Bus`, the same server and the same messages, counting lines.
struct IngestBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Publish cc-metric-collector lines into a temporary nats-server; time a bare subscriber and clusterd's metric path, interleaved, and print the ratio."
    )

    @Option(help: "Hosts sending metrics.") var hosts = 2000
    @Option(help: "Collector intervals per run (each: every host sends its 20 series).") var rounds = 25
    @Option(help: "Lines per NATS message.") var linesPerMessage = 100
    @Option(help: "Runs of each kind, interleaved (at least 2: the first creates every series).") var runs = 5
    @Option(help: "Then publish to clusterd for this long, printing its resident memory every minute (0: no soak).")
    var soakSeconds = 0
    @Option(help: "Checks library.") var checks = "config/checks.yaml"
    @Option(help: "Topology.") var topology = "config/topology.yaml"

    func run() throws {
        let site = try BenchSite("ingest", nodes: BenchSite.hosts(hosts))
        defer { withExtendedLifetime(site) {} }  // its directory goes with it
        var config = site.config
        config.health.checks = checks
        config.health.topology = topology
        config.metrics.maxSeries = max(config.metrics.maxSeries, hosts * 20)
        config.metrics.maxSeriesPerCluster = max(config.metrics.maxSeriesPerCluster, hosts * 20)
        let server = site.server, logger = site.logger

        let messages = Self.messages(hosts: hosts, rounds: rounds, linesPerMessage: linesPerMessage)
        let lines = messages.reduce(0) { $0 + $1.lines }
        let bytes = messages.reduce(0) { $0 + $1.body.count }
        print("\(messages.count) messages of \(linesPerMessage) lines, \(lines) lines, \(bytes / 1_000_000) MB per run (\(hosts) hosts × 20 series × \(rounds) rounds)")

        let publisher = try BusConnection(ConnectionOptions(servers: [server.url], name: "bench-publisher"))
        let service = ClusterdService(config: config, logger: logger)
        try service.start()
        defer { service.stop() }
        let bare = try BusConnection(ConnectionOptions(servers: [server.url], name: "bench-bare"))
        let counted = SharedCount()  // lines the bare subscriber counted (its delivery thread adds)
        let subscription = try bare.subscribe("bench.bare") { message in
            var n = 0
            for byte in message.data where byte == 10 { n += 1 }
            counted.add(n)
        }
        try subscription.removePendingLimits()
        try bare.flush()

        var bestBare = Double.infinity, bestFull = Double.infinity, ratios: [Double] = []
        var evaluatedBefore = service.counters["health.samples"], lostBefore = 0
        for run in 1...runs {
            // The wire limit: the same messages to a subscriber that only counts their lines.
            let target = counted.value + lines
            let bareTime = try time {
                for m in messages { try publisher.publish("bench.bare", m.body) }
                try publisher.flush()
                while counted.value < target { usleep(200) }
            }
            // clusterd: until every line is evaluated by the health loop (or counted lost),
            // then a health query answered on the evaluation thread (after every queued input).
            let cpuBefore = Self.threadCPU()
            let fullTime = try time {
                for m in messages { try publisher.publish("cc.metrics.fritz", m.body) }
                try publisher.flush()
                while service.counters["health.samples"] + lost(service) < evaluatedBefore + lostBefore + lines { usleep(200) }
                _ = try bare.request(BusMessage(subject: "clusterd.api.health.get", data: Array("{}".utf8)), timeout: .seconds(30))
            }
            let busiest = Self.threadCPU().map { ($0.key, $0.value - (cpuBefore[$0.key] ?? 0)) }.sorted { $0.1 > $1.1 }.prefix(3)
            let busy = busiest.map { String(format: "%@ %.0f%%", $0.0 as NSString, 100 * $0.1 / fullTime) }.joined(separator: ", ")
            let evaluated = service.counters["health.samples"] - evaluatedBefore
            evaluatedBefore += evaluated
            let lostNow = lost(service) - lostBefore
            lostBefore += lostNow
            print(String(format: "run %d: bare subscriber %.3f s (%.2f M lines/s), clusterd %.3f s (%.2f M lines/s), ratio %.2f; lines evaluated %d of %d%@\n  busiest threads while clusterd ran (CPU time / wall time): %@",
                         run, bareTime, Double(lines) / bareTime / 1e6, fullTime, Double(lines) / fullTime / 1e6, bareTime / fullTime,
                         evaluated, lines, lostNow > 0 ? " — \(lostNow) LOST (dropped or refused)" as NSString : "" as NSString, busy as NSString))
            if run > 1 { ratios.append(bareTime / fullTime) }  // the first run creates every series
            bestBare = min(bestBare, bareTime)
            bestFull = min(bestFull, fullTime)
        }
        print(String(format: "best: bare subscriber %.2f M lines/s, clusterd through the checks %.2f M lines/s (ratio of the bests %.2f)",
                     Double(lines) / bestBare / 1e6, Double(lines) / bestFull / 1e6, bestBare / bestFull), terminator: "")
        // With one run there is no median: that run also created every series (it crashed on an empty list).
        if ratios.isEmpty {
            print("; one run, which also created every series: --runs 2 or more for the median (goal ≥ 0.5, ≥ 0.7)")
        } else {
            print(String(format: "; median ratio of runs 2–%d: %.2f (goal ≥ 0.5, ≥ 0.7)", runs, ratios.sorted()[ratios.count / 2]))
        }
        if soakSeconds > 0 { try soak(publisher: publisher, messages: messages, lines: lines, service: service) }
        print("buffers: \(service.metricStore?.usage.series ?? 0) series (\(service.counters["metrics.series_indexed"]) byte forms indexed); resident \(HealthBench.residentBytes() / 1_000_000) MB")
    }

    /// cc-metric-collector messages with current timestamps: per host 8 node metrics, 4
    /// hardware threads of cpu_user, 4 GPUs × (nv_temp, nv_util) — the checks library watches
    /// cpu_load and nv_temp.
    static func messages(hosts: Int, rounds: Int, linesPerMessage: Int) -> [(body: [UInt8], lines: Int)] {
        let now = Int(Date().timeIntervalSince1970)
        var out: [(body: [UInt8], lines: Int)] = []
        var body = "", n = 0
        for r in 0..<rounds {
            let t = now - rounds + r
            for h in 0..<hosts {
                let host = "f" + String(format: "%04d", h)
                var series: [String] = []
                for metric in ["cpu_load", "mem_used", "flops_any", "mem_bw", "net_bw", "ib_recv", "ib_xmit", "lustre_read_bw"] {
                    series.append("\(metric),cluster=fritz,hostname=\(host),type=node value=\(Double((h * 7 + r) % 100) + 0.5) \(t)")
                }
                for thread in 0..<4 { series.append("cpu_user,cluster=fritz,hostname=\(host),type=hwthread,type-id=\(thread) value=\((thread + r) % 100) \(t)") }
                for gpu in 0..<4 {
                    series.append("nv_temp,cluster=fritz,hostname=\(host),type=accelerator,type-id=\(gpu) value=\(50 + (h + gpu + r) % 30) \(t)")
                    series.append("nv_util,cluster=fritz,hostname=\(host),type=accelerator,type-id=\(gpu) value=\((h * gpu + r) % 100) \(t)")
                }
                for line in series {
                    body += line + "\n"
                    n += 1
                    if n == linesPerMessage {
                        out.append((Array(body.utf8), n))
                        body = ""
                        n = 0
                    }
                }
            }
        }
        if n > 0 { out.append((Array(body.utf8), n)) }
        return out
    }

    /// Publishes the messages again and again for `soakSeconds` (each pass when clusterd has
    /// taken the last), printing lines/s and resident memory every minute: memory must stay flat.
    func soak(publisher: BusConnection, messages: [(body: [UInt8], lines: Int)], lines: Int, service: ClusterdService) throws {
        let start = Date()
        var nextReport = start.addingTimeInterval(60), passes = 0, linesAtReport = 0
        print(String(format: "soak: %d s; resident at start %.0f MB", soakSeconds, Double(HealthBench.residentBytes()) / 1e6))
        while Date().timeIntervalSince(start) < Double(soakSeconds) {
            let target = service.counters["health.samples"] + lines
            for m in messages { try publisher.publish("cc.metrics.fritz", m.body) }
            try publisher.flush()
            while service.counters["health.samples"] + lost(service) < target { usleep(500) }
            passes += 1
            if Date() >= nextReport {
                let done = passes * lines - linesAtReport
                linesAtReport = passes * lines
                print(String(format: "  %4.0f s: %.2f M lines/s over the last minute, resident %.0f MB, lost so far %d",
                             Date().timeIntervalSince(start), Double(done) / 60 / 1e6, Double(HealthBench.residentBytes()) / 1e6, lost(service)))
                nextReport = nextReport.addingTimeInterval(60)
            }
        }
    }

    /// Lines that did not reach the checks: dropped by a full health queue or dead-lettered.
    func lost(_ service: ClusterdService) -> Int {
        service.counters.snapshot.reduce(0) { $0 + ($1.key == "health.samples_dropped" || $1.key.hasPrefix("dead_letters.metrics.") ? $1.value : 0) }
    }

    /// CPU seconds of each thread of this process so far, by "<name>/<tid>" (Linux /proc).
    static func threadCPU() -> [String: Double] {
        var out: [String: Double] = [:]
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        for tid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? [] {
            guard let stat = try? String(contentsOfFile: "/proc/self/task/\(tid)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
            out["\(stat[stat.index(after: open)..<close])/\(tid)"] = (user + system) / ticks
        }
        return out
    }

    func time(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
