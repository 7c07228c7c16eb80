import ArgumentParser
import Bus
import Config
import Foundation
import Logging
import NATSServerProcess
import Pipeline

/// How long an alert takes: from publishing a metric line that crosses a threshold to its
/// alert arriving on `clusterd.alert.>`, while a background of ordinary lines flows at a set
/// rate, through `clusterd run`'s whole path (decode, buffers, checks, the alert book's
/// SQLite transaction, the outbox, the publication).
struct AlertsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "Time threshold crossings to their alerts on clusterd.alert.> under a background metric load; print p50/p99."
    )

    @Option(help: "Threshold crossings to time (each fires one alert and resolves it).") var crossings = 1000
    @Option(help: "Background metric lines per second.") var rate = 50_000
    @Option(help: "Hosts sending the background lines.") var hosts = 1000

    func run() throws {
        let site = try BenchSite("alerts", nodes: BenchSite.hosts(hosts))
        defer { withExtendedLifetime(site) {} }  // its directory goes with it
        let checksFile = site.directory.appendingPathComponent("checks.yaml")
        // Fires at once and resolves at once (no for, no keep_firing_for, no flapping): what
        // is timed is the path, not a rule's patience.
        try """
            checks:
              - id: bench_temp
                name: Bench temperature
                scope: node
                source:
                  metric: {name: bench_temp, match: {type: node}}
                rules:
                  - {op: ">=", value: 90, severity: CRIT}
                flapping: false
                summary: "{host} at {value}"
            """.write(to: checksFile, atomically: true, encoding: .utf8)
        var config = site.config
        config.health.checks = checksFile.path
        let server = site.server, logger = site.logger
        let service = ClusterdService(config: config, logger: logger)
        try service.start()
        defer { service.stop() }

        // The background: `rate` lines/s of cpu_load and bench_temp below the threshold, in
        // messages of 100 lines every 100 lines' worth of time.
        let background = try BusConnection(ConnectionOptions(servers: [server.url], name: "bench-background"))
        let stop = SharedCount(), sent = SharedCount()
        let load = Thread {
            let start = DispatchTime.now().uptimeNanoseconds
            var n = 0
            while stop.value == 0 {
                let t = Int(Date().timeIntervalSince1970)
                var body = ""
                for i in 0..<100 {
                    let host = "f" + String(format: "%04d", (n + i) % hosts)
                    body += i % 2 == 0 ? "cpu_load,cluster=fritz,hostname=\(host),type=node value=\(i) \(t)\n"
                        : "bench_temp,cluster=fritz,hostname=\(host),type=node value=\(40 + i % 30) \(t)\n"
                }
                try? background.publish("cc.metrics.fritz", Array(body.utf8))
                n += 100
                sent.set(n)
                // Paced: the n-th line leaves at n / rate seconds.
                let due = start + UInt64(Double(n) / Double(rate) * 1e9)
                let now = DispatchTime.now().uptimeNanoseconds
                if due > now { usleep(UInt32((due - now) / 1000)) }
            }
        }
        load.start()
        defer { stop.set(1) }

        // Crossings on hosts the background never uses, so nothing else moves their alert.
        let probe = try BusConnection(ConnectionOptions(servers: [server.url], name: "bench-probe"))
        let arrivals = Arrivals()
        let subscription = try probe.subscribe("\(config.health.alertPrefix).>") { message in
            arrivals.add(message, at: DispatchTime.now().uptimeNanoseconds)
        }
        try subscription.removePendingLimits()
        try probe.flush()
        Thread.sleep(forTimeInterval: 1)  // the background reaches its rate
        var fire: [Double] = [], resolve: [Double] = []
        let began = DispatchTime.now().uptimeNanoseconds, sentBefore = sent.value
        for i in 0..<crossings {
            let host = "x\(i % 50)"
            for (value, status) in [(95, "firing"), (20, "resolved")] {
                let line = "bench_temp,cluster=fritz,hostname=\(host),type=node value=\(value) \(Int(Date().timeIntervalSince1970))\n"
                let t0 = DispatchTime.now().uptimeNanoseconds
                try probe.publish("cc.metrics.fritz", Array(line.utf8))
                guard let t1 = arrivals.wait(entity: host, status: status, timeout: 10) else {
                    throw ValidationError("crossing \(i): no \(status) alert for \(host) within 10 s")
                }
                (status == "firing" ? { fire.append($0) } : { resolve.append($0) })(Double(t1 - t0) / 1e6)
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
        let lineRate = Double(sent.value - sentBefore) / seconds
        func pct(_ xs: [Double], _ p: Double) -> Double { xs.sorted()[min(xs.count - 1, Int(Double(xs.count) * p))] }
        print(String(format: "%d crossings under %.0f background lines/s (asked %d; %d hosts)", crossings, lineRate, rate, hosts))
        print(String(format: "line → firing alert:   p50 %.2f ms, p99 %.2f ms, max %.2f ms", pct(fire, 0.5), pct(fire, 0.99), fire.max() ?? 0))
        print(String(format: "line → resolved alert: p50 %.2f ms, p99 %.2f ms, max %.2f ms", pct(resolve, 0.5), pct(resolve, 0.99), resolve.max() ?? 0))
        print(String(format: "goal: p99 < 5 ms at 50 k lines/s; lines evaluated %d, lost %d", service.counters["health.samples"],
                      service.counters["health.samples_dropped"]))
    }

    /// Alerts received, by entity and status, with their arrival time.
    final class Arrivals: @unchecked Sendable {
        private let condition = NSCondition()
        private var seen: [String: UInt64] = [:]

        func add(_ message: BusMessage, at time: UInt64) {
            guard let json = try? JSONSerialization.jsonObject(with: Data(message.data)) as? [String: Any],
                  let labels = json["labels"] as? [String: Any], let entity = labels["hostname"] as? String ?? labels["entity"] as? String,
                  let status = json["status"] as? String else { return }
            condition.withLock {
                seen["\(entity) \(status)"] = time
                condition.broadcast()
            }
        }

        /// The arrival time of `entity`'s alert with `status` (and forgets it), nil after `timeout` s.
        func wait(entity: String, status: String, timeout: Double) -> UInt64? {
            let deadline = Date().addingTimeInterval(timeout)
            return condition.withLock {
                while seen["\(entity) \(status)"] == nil { if !condition.wait(until: deadline) { return nil } }
                return seen.removeValue(forKey: "\(entity) \(status)")
            }
        }
    }
}
