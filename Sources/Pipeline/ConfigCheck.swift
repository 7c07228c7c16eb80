import Config
import Foundation
import Health
import Model

/// `clusterd check-config`: loads the configuration and every file it names, and reports
/// each problem with its file (and line where the format has lines), not only the first.
public enum ConfigCheck {
    /// What was checked: a summary line per file, and the problems found.
    public struct Report: Sendable {
        public var checked: [String] = []
        public var problems: [String] = []
    }

    /// Checks the configuration at `path` (paths inside are relative to the working directory,
    /// as for `clusterd run`).
    public static func run(path: String) -> Report {
        var report = Report()
        let config: ClusterdConfig
        do {
            config = try ClusterdConfig.load(path: path)
            report.checked.append("\(path): \(config.intake.mode.rawValue) intake, data in \(config.storage.dataDir)")
        } catch {
            report.problems += error.description.split(separator: "\n").map(String.init)
            return report
        }
        for file in config.jobs.clusterFiles {
            do {
                let cluster = try ClusterConfig(contentsOf: file)
                report.checked.append("\(file): cluster \(cluster.name), \(cluster.subClusters.count) subclusters, \(cluster.metrics.count) metrics")
            } catch {
                report.problems.append(error.description)
            }
        }
        var topology: Topology?
        if let file = config.health.topology {
            do {
                let t = try Topology(contentsOf: file)
                topology = t
                report.checked.append("\(file): \(t.sites.count) sites, \(t.rackPlacement.count) racks, \(t.hosts.count) hosts")
            } catch {
                report.problems.append(error.description)
            }
        }
        if let file = config.health.checks {
            do {
                let library = try CheckLibrary(contentsOf: file)
                report.checked.append("\(file): \(library.checks.count) checks")
                if topology == nil, library.checks.contains(where: { if case .silence = $0.source { return true }; return false }) {
                    report.checked.append("\(file): note: silence checks without a topology only watch hosts that have sent something")
                }
            } catch {
                report.problems.append(error.description)
            }
        } else {
            report.checked.append("\(path): no health.checks: nothing is evaluated")
        }
        return report
    }
}
