import ArgumentParser
import Bus
import Foundation
import Model
import Slurm

/// `clusterd slurm`: the Slurm side of clusterd, run next to slurmctld (systemd unit
/// `config/slurm/clusterd-slurm.service`). It publishes node states from `sinfo --json` on
/// every change and every refresh interval, and reconciles jobs: whatever the controller hooks
/// missed (broker down, hook killed or disabled) is published from Slurm's own record, with the
/// same message ids the hooks use, so a job seen by both is applied once.
struct SlurmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slurm",
        abstract: "Publish Slurm's node states and reconcile its jobs with clusterd (run next to slurmctld).",
        discussion: """
            Every --poll-seconds it reads `sinfo --json` and publishes cc.node.state when a node's state, flags or \
            allocation changed, and all nodes every --refresh-seconds. Every --reconcile-seconds it reads \
            `squeue --json --states=all` (the jobs slurmctld still holds: MinJobAge, 300 s by default) and, where Slurm \
            keeps accounting, `sacct --json` for the last --lookback-hours; each job that ran is looked up with \
            clusterd.api.jobs.get, and a missing start or stop is published from Slurm's record. \
            --once does one pass of both and exits (0 when everything was reachable). \
            Slurm's commands must be on PATH and find slurm.conf (SLURM_CONF for a non-default place).
            """
    )

    @OptionGroup var publish: PublishOptions
    @Option(help: "Cluster name (default: ClusterName from `scontrol show config`).") var cluster: String?
    @Option(help: "Seconds between node-state polls.") var pollSeconds: Double = 10
    @Option(help: "Seconds between publications of every node, changed or not.") var refreshSeconds: Double = 300
    @Option(help: "Seconds between job reconciliation passes.") var reconcileSeconds: Double = 60
    @Option(help: "Hours of accounting (sacct) each reconciliation pass looks back.") var lookbackHours: Int64 = 24
    @Option(help: "Seconds a Slurm command may take.") var slurmTimeout: Double = 10
    @Flag(help: "One pass (all nodes, all jobs) and exit.") var once = false

    func run() throws {
        let slurm = SlurmCLI(timeout: slurmTimeout)
        let clusterName = try cluster ?? Self.clusterName(slurm)
        let connection = try publish.connect(name: "clusterd-slurm")
        defer { connection.close() }
        let daemon = SlurmPublisher(cluster: clusterName, slurm: slurm, connection: connection, lookback: lookbackHours * 3600)
        daemon.subjects = { [publish] base, cluster in publish.clusterSubject(base: base, cluster: cluster) }
        log("clusterd slurm: cluster \(clusterName), NATS \(QueryCommand.serverURL(publish.server))")
        if once {
            let nodesOK = daemon.publishNodes(force: true)
            let jobsOK = daemon.reconcile()
            if !(nodesOK && jobsOK) { throw ExitCode(2) }
            return
        }
        let stop = StopFlag()
        var lastReconcile = Date.distantPast, lastRefresh = Date.distantPast
        while !stop.isSet {
            let now = Date()
            let refresh = now.timeIntervalSince(lastRefresh) >= refreshSeconds
            if daemon.publishNodes(force: refresh), refresh { lastRefresh = now }
            if now.timeIntervalSince(lastReconcile) >= reconcileSeconds {
                lastReconcile = now
                _ = daemon.reconcile()
            }
            stop.sleep(pollSeconds)
        }
        log("clusterd slurm: stopped")
    }

    /// ClusterName from `scontrol show config`.
    static func clusterName(_ slurm: SlurmCLI) throws -> String {
        let text = String(decoding: try slurm.run("scontrol", ["show", "config"]), as: UTF8.self)
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == "ClusterName" {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        throw ValidationError("scontrol show config names no ClusterName: give --cluster")
    }
}

/// One line on standard error with a time stamp (the journal adds its own as well).
func log(_ text: String) {
    FileHandle.standardError.write(Data("\(ISO8601DateFormatter().string(from: Date())) \(text)\n".utf8))
}

/// What `clusterd slurm` keeps between passes.
final class SlurmPublisher {
    let cluster: String
    let slurm: SlurmCLI
    let connection: BusConnection
    let lookback: Int64
    /// Subjects: plain, or per cluster (`--per-cluster-subject`).
    var subjects: (_ base: String, _ cluster: String?) -> String = { base, _ in base }
    /// The node entries last published, by hostname.
    private var published: [String: JSONValue] = [:]
    /// Ended jobs clusterd has, with their stops: never looked up again.
    private var settled = Set<String>()
    private var warnedNoAccounting = false

    init(cluster: String, slurm: SlurmCLI, connection: BusConnection, lookback: Int64) {
        self.cluster = cluster
        self.slurm = slurm
        self.connection = connection
        self.lookback = lookback
    }

    /// Publishes the nodes whose entry changed (all with `force`); false when Slurm or NATS
    /// could not be reached.
    func publishNodes(force: Bool) -> Bool {
        let nodes: [SlurmNode]
        do { nodes = try slurm.nodes() } catch {
            log("node states: \(error)")
            return false
        }
        let changed = nodes.filter { force || published[$0.hostname] != $0.entry }
        guard !changed.isEmpty else { return true }
        do {
            let (line, id) = try nodeStateMessage(SlurmNode.event(cluster: cluster, nodes: changed), time: Int64(Date().timeIntervalSince1970))
            try publish(subjects("cc.node.state", cluster), line, id)
        } catch {
            log("node states not published: \(error)")
            return false
        }
        for node in changed {
            if !force || published[node.hostname] != node.entry {
                log("node \(node.hostname): \(node.states.joined(separator: "+"))\(node.reason.map { " (\($0))" } ?? "")")
            }
            published[node.hostname] = node.entry
        }
        return true
    }

    /// One reconciliation pass; false when Slurm or clusterd could not be asked.
    func reconcile() -> Bool {
        var jobs: [SlurmJob]
        do { jobs = try slurm.jobs(cluster: cluster) } catch {
            log("reconciliation: \(error)")
            return false
        }
        do {
            jobs += try slurm.accountedJobs(since: Int64(Date().timeIntervalSince1970) - lookback, cluster: cluster)
        } catch {
            if !warnedNoAccounting {
                log("reconciliation: no accounting data (\(error)); only the jobs slurmctld still holds are reconciled")
                warnedNoAccounting = true
            }
        }
        var seen = Set<String>()
        var starts = 0, stops = 0
        for job in jobs where job.ran && job.cluster == cluster {
            guard let startTime = job.startTime else { continue }
            let key = "\(job.id)-\(startTime)"
            guard seen.insert(key).inserted, !settled.contains(key) else { continue }
            let known: JSONValue?
            do { known = try lookUp(job) } catch {
                log("reconciliation stopped: clusterd did not answer for job \(job.id): \(error)")
                return false
            }
            // A job still COMPLETING (22.05) has no settled end state yet: the next pass sends it.
            let ended = job.endState != nil && job.endStateIsFinal
            do {
                if known == nil {
                    try send("start_job", job.startEvent(), timeKey: "startTime")
                    starts += 1
                }
                if ended && (known == nil || known?["jobState"]?.stringValue == "running") {
                    try send("stop_job", job.stopEvent(), timeKey: "stopTime")
                    stops += 1
                } else if ended {
                    settled.insert(key)
                }
            } catch {
                log("reconciliation: job \(job.id) not published: \(error)")
                return false
            }
        }
        if starts + stops > 0 { log("reconciliation: published \(starts) missed starts and \(stops) missed stops") }
        return true
    }

    /// clusterd's record of `job` (nil when it has none).
    private func lookUp(_ job: SlurmJob) throws -> JSONValue? {
        var request = JSONObjectBuilder()
        request.add("jobId", job.id)
        request.add("cluster", job.cluster)
        if let start = job.startTime { request.add("startTime", start) }
        let reply = try connection.request(BusMessage(subject: "clusterd.api.jobs.get", data: request.value.jsonBytes),
                                           timeout: .seconds(5))
        if reply.headers["Nats-Service-Error-Code"]?.first == "404" { return nil }
        if let code = reply.headers["Nats-Service-Error-Code"]?.first {
            throw SlurmCLI.Failure(description: "clusterd.api.jobs.get answered \(code): \(reply.text)")
        }
        return try JSONValue.parse(reply.data)["job"]
    }

    private func send(_ function: String, _ payload: JSONValue, timeKey: String) throws {
        let (line, id) = try jobMessage(function, payload, timeKey: timeKey)
        try publish(subjects("cc.job.event", payload["cluster"]?.stringValue ?? cluster), line, id)
    }

    /// Publishes to the stream with the event's message id, retried while a broker restarts.
    private func publish(_ subject: String, _ line: [UInt8], _ id: String) throws {
        _ = try JetStream(connection, timeout: .seconds(5)).publish(BusMessage(subject: subject, data: line), messageID: id,
                                                                    retries: 3, interval: .milliseconds(500))
    }
}

/// Set by SIGTERM or SIGINT; sleeping is cut short by it.
final class StopFlag: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var set = false
    private var sources: [DispatchSourceSignal] = []

    init() {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                lock.withLock { set = true }
                semaphore.signal()
            }
            source.resume()
            sources.append(source)
        }
    }

    var isSet: Bool { lock.withLock { set } }

    func sleep(_ seconds: Double) { _ = semaphore.wait(timeout: .now() + seconds) }
}
