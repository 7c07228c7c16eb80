import Foundation
import Prometheus

/// The standard `process_*` metrics of Prometheus client libraries (CPU time, memory, file
/// descriptors, start time), read from /proc at each scrape. Own code: swift-prometheus 2
/// ships no process collector.
package final class ProcessMetrics: @unchecked Sendable {
    /// Reads /proc/self from now on.
    package init() {}

    private let lock = NSLock()
    private var cpuReported = 0.0
    private let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    private let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
    private let started = Date().timeIntervalSince1970

    /// Updates the process metrics in `registry`.
    package func collect(into registry: PrometheusCollectorRegistry) {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return }
        // Fields after "pid (comm)": state is field 3; utime 14, stime 15, vsize 23, rss 24.
        let fields = stat[stat.index(after: close)...].split(separator: " ").map(String.init)
        func field(_ n: Int) -> Double { fields.count > n - 3 ? Double(fields[n - 3]) ?? 0 : 0 }
        let cpu = (field(14) + field(15)) / ticks
        lock.withLock {
            if cpu > cpuReported {
                registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "process_cpu", unitName: "seconds_total",
                                                                      helpText: "Total user and system CPU time spent in seconds."))
                    .increment(by: cpu - cpuReported)
                cpuReported = cpu
            }
        }
        func gauge(_ name: String, _ unit: String, _ help: String, _ value: Double) {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: unit, helpText: help)).set(value)
        }
        gauge("process_virtual_memory", "bytes", "Virtual memory size in bytes.", field(23))
        gauge("process_resident_memory", "bytes", "Resident memory size in bytes.", field(24) * pageSize)
        // The kernel's start time is relative to boot (/proc/uptime, hidden under systemd's
        // ProcSubset=pid): this object is made at start-up, which is close enough.
        gauge("process_start_time", "seconds", "Start time of the process since unix epoch in seconds.", started.rounded())
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        gauge("process_open_fds", "", "Number of open file descriptors.", Double(fds))
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            gauge("process_max_fds", "", "Maximum number of open file descriptors.", Double(limit.rlim_cur))
        }
    }
}
