import ArgumentParser
import Bus
import Foundation
import LineProtocol
import Model
import Slurm

/// `clusterd publish`: what a scheduler hook runs. Builds the exact ClusterCockpit event,
/// publishes it (JetStream with a message id, so a retried hook is de-duplicated; core
/// request/reply when there is no stream), waits for clusterd's result and exits non-zero
/// with the reason when the event was refused or no result came.
struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish a job start, job stop or node state as a scheduler hook would, and wait for clusterd's verdict.",
        discussion: """
            job-start and job-stop take flags, JSON on standard input (--json), or Slurm's own record of the hook's job \
            (--from-slurm-env: `squeue --json` for SLURM_JOB_ID — real start and end times, end state, account, nodes; \
            when squeue cannot answer, the variables Slurm gives PrologSlurmctld/EpilogSlurmctld, with a warning). \
            The message id is derived from the event, so a retry, or `clusterd slurm` publishing the same job, is applied once; \
            a duplicate acknowledgement from the stream counts as delivered. \
            Exit codes: 0 accepted, 1 refused (reason on standard error), 2 usage or connection error, 3 no result in time.
            """,
        subcommands: [JobStartPublish.self, JobStopPublish.self, NodeStatePublish.self]
    )
}

/// Options every publish shares.
struct PublishOptions: ParsableArguments {
    @Option(help: "NATS server URL (default $NATS_URL or nats://127.0.0.1:4222).") var server: String?
    @Option(help: "Subject (default cc.job.event, or cc.node.state for node-state).") var subject: String?
    @Option(help: "Seconds for everything: connecting, publishing (retried) and waiting for clusterd's result.") var timeout: Double = 10
    @Option(help: "Nats-Msg-Id (default: derived from the event, so a retry is de-duplicated).") var messageID: String?
    @Option(name: .customLong("nats-user"), help: "NATS user (or $CLUSTERD_NATS_USER).") var natsUser: String?
    @Option(name: .customLong("nats-password"), help: "NATS password (or $CLUSTERD_NATS_PASSWORD).") var natsPassword: String?
    @Option(name: .customLong("inbox-prefix"),
            help: "Reply-subject prefix the broker allows this user, e.g. _INBOX_hook (or $CLUSTERD_INBOX_PREFIX; default _INBOX).")
    var inboxPrefix: String?
    @Flag(help: "Print the subject, message id and payload instead of sending them.") var dryRun = false
    @Flag(help: ArgumentHelp("Publish on <subject>.<cluster> (cc.job.event.fritz), for clusterd instances that own clusters (intake.per_cluster_subjects); or $CLUSTERD_PER_CLUSTER_SUBJECT=1."))
    var perClusterSubject = false

    /// The subject for an event of `cluster`: --subject, else `base`, per cluster when asked.
    func subject(base: String, cluster: String?) -> String {
        subject ?? clusterSubject(base: base, cluster: cluster)
    }

    /// `base`, or `<base>.<cluster>` with --per-cluster-subject (or the environment's).
    func clusterSubject(base: String, cluster: String?) -> String {
        let perCluster = perClusterSubject || ["1", "yes", "true"].contains(ProcessInfo.processInfo.environment["CLUSTERD_PER_CLUSTER_SUBJECT"] ?? "")
        guard perCluster, let cluster, !cluster.isEmpty else { return base }
        return "\(base).\(Self.subjectToken(cluster))"
    }

    /// A connection with these options (user, password and inbox prefix from the
    /// environment when not given).
    func connect(name: String) throws -> BusConnection {
        var options = ConnectionOptions(servers: [QueryCommand.serverURL(server)], name: name)
        let env = ProcessInfo.processInfo.environment
        options.user = natsUser ?? env["CLUSTERD_NATS_USER"].flatMap { $0.isEmpty ? nil : $0 }
        options.password = natsPassword ?? env["CLUSTERD_NATS_PASSWORD"]
        options.inboxPrefix = inboxPrefix ?? env["CLUSTERD_INBOX_PREFIX"].flatMap { $0.isEmpty ? nil : $0 }
        options.sendAsap = true
        do { return try BusConnection(options) } catch {
            FileHandle.standardError.write(Data("cannot connect to NATS at \(QueryCommand.serverURL(server)): \(error)\n".utf8))
            throw ExitCode(2)
        }
    }

    /// Sends one line-protocol event and waits for the result on
    /// `clusterd.result.<stage>.<id>`, all within ``timeout``. A JetStream acknowledgement
    /// that reports a duplicate means an earlier attempt (a retried hook, the reconciliation)
    /// delivered this very event already: that is success.
    func send(line: [UInt8], stage: String, defaultSubject: String, cluster: String?, messageID defaultID: String) throws {
        let subject = self.subject(base: defaultSubject, cluster: cluster)
        let id = messageID ?? defaultID
        if dryRun {
            print("\(subject) Nats-Msg-Id: \(id)")
            print(String(decoding: line, as: UTF8.self), terminator: "")
            return
        }
        let deadline = Date().addingTimeInterval(timeout)
        func remaining(max: Double = .infinity) -> Duration {
            .milliseconds(Int64(1000 * Swift.max(0.05, Swift.min(max, deadline.timeIntervalSinceNow))))
        }
        let connection = try connect(name: "clusterd-publish")
        defer { connection.close() }
        let url = QueryCommand.serverURL(server)
        let box = ResultWaiter()
        let sub: BusSubscription
        do {
            sub = try connection.subscribe("clusterd.result.\(stage).\(Self.subjectToken(id))") { box.put($0) }
            try connection.flush(timeout: remaining())
        } catch {
            let reason = connection.lastError.map { "\(error) (\($0))" } ?? "\(error)"
            FileHandle.standardError.write(Data("cannot reach NATS at \(url): \(reason)\n".utf8))
            throw ExitCode(2)
        }
        defer { sub.unsubscribe() }
        let message = BusMessage(subject: subject, headers: ["Nats-Msg-Id": [id]], data: line)
        var answer: BusMessage?
        var lastError: BusError?
        var conflicting: (stream: String, sequence: UInt64)?
        publishing: while deadline.timeIntervalSinceNow > 0 {
            do {
                let js = try JetStream(connection, timeout: remaining(max: 2))
                let ack = try js.publish(message, messageID: id, timeout: remaining(max: 2))
                if ack.duplicate, let original = try? js.message(stream: ack.stream, sequence: ack.sequence), original.data != line {
                    // The broker kept an earlier, different event under this id and dropped this one.
                    conflicting = (ack.stream, ack.sequence)
                    break publishing
                }
                if ack.duplicate {
                    // The result of the first delivery may still be on its way; else it went out then.
                    answer = box.wait(Swift.min(1, Swift.max(0, deadline.timeIntervalSinceNow)))
                    if answer == nil {
                        FileHandle.standardError.write(Data("\(id): already delivered (the stream reports a duplicate): accepted earlier\n".utf8))
                        return
                    }
                } else {
                    answer = box.wait(Swift.max(0, deadline.timeIntervalSinceNow))
                }
                lastError = nil
                break publishing
            } catch .noResponders {
                // No stream on the subject: clusterd runs in core mode and answers on the reply subject.
                answer = try? connection.request(message, timeout: remaining())
                break publishing
            } catch {
                lastError = error
                usleep(200_000)
            }
        }
        if let conflicting {
            FileHandle.standardError.write(Data("""
                \(id): NOT delivered: stream \(conflicting.stream) already holds a different event under this message id \
                (sequence \(conflicting.sequence)) and the broker dropped this one; publish it with another --message-id

                """.utf8))
            throw ExitCode(3)
        }
        guard let answer else {
            let why = lastError.map { "not delivered to NATS at \(url): \($0)" } ?? "no result from clusterd"
            FileHandle.standardError.write(Data("\(why) within \(timeout) s for \(id)\n".utf8))
            throw ExitCode(lastError == nil ? 3 : 2)
        }
        print(answer.text)
        let result = try? JSONValue.parse(answer.data)
        if result?["ok"] == .bool(false) {
            FileHandle.standardError.write(Data("refused: \(result?["error"]?.stringValue ?? answer.text)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// A message id as one subject token (no dots, wildcards, spaces or non-ASCII).
    static func subjectToken(_ id: String) -> String {
        String(id.map { $0 == "." || $0 == "*" || $0 == ">" || $0.isWhitespace || !$0.isASCII ? "_" : $0 })
    }

    /// Sends a job event; its time (`timeKey`) stamps the line, and the message id is
    /// `<function>-<cluster>-<jobId>-<time>`, the same for every retry of the same event.
    func sendJob(_ function: String, _ payload: JSONValue, timeKey: String) throws {
        let (line, id) = try jobMessage(function, payload, timeKey: timeKey)
        try send(line: line, stage: "jobs", defaultSubject: "cc.job.event", cluster: payload["cluster"]?.stringValue, messageID: id)
    }

    final class ResultWaiter: @unchecked Sendable {
        private let lock = NSLock()
        private let ready = DispatchSemaphore(value: 0)
        private var message: BusMessage?
        func put(_ m: BusMessage) { lock.lock(); message = m; lock.unlock(); ready.signal() }
        func wait(_ seconds: Double) -> BusMessage? {
            _ = ready.wait(timeout: .now() + seconds)
            lock.lock(); defer { lock.unlock() }
            return message
        }
    }
}

/// A job event's line and message id: the line is stamped with the event's `timeKey`
/// time, and the id is `<function>-<cluster>-<jobId>-<time>` — the same for every
/// publisher of the same event (hook, retry, reconciliation).
func jobMessage(_ function: String, _ payload: JSONValue, timeKey: String) throws -> (line: [UInt8], id: String) {
    var time = Int64(Date().timeIntervalSince1970)
    if case .integer(let t)? = payload[timeKey] { time = t }
    let id = "\(function)-\(payload["cluster"]?.stringValue ?? "")-\(payload["jobId"]?.jsonText ?? "")-\(time)"
    return (try eventLine(measurement: "job", function: function, json: payload, time: time), id)
}

/// A nodestate event's line and message id. The id is derived from the content (cluster,
/// time and a hash of the JSON), so two different events of one cluster in the same second
/// both count, and only a true repeat is de-duplicated.
func nodeStateMessage(_ payload: JSONValue, time: Int64) throws -> (line: [UInt8], id: String) {
    let id = "nodestate-\(payload["cluster"]?.stringValue ?? "")-\(time)-\(ContentHash.hex(payload.jsonText))"
    return (try eventLine(measurement: "nodestate", function: nil, json: payload, time: time), id)
}

/// ClusterCockpit's envelope: `<measurement>[,function=<f>] event="<json>" <ns>`.
func eventLine(measurement: String, function: String?, json: JSONValue, time: Int64) throws -> [UInt8] {
    let point = Point(measurement: measurement, tags: function.map { [Tag("function", $0)] } ?? [],
                      fields: [Field("event", .string(json.jsonText))], timestamp: time * 1_000_000_000)
    var out = try LineEncoder().encode(point)
    out.append(10)
    return out
}

/// What Slurm's controller hooks provide.
struct SlurmEnvironment {
    let env: [String: String]

    func value(_ key: String) throws -> String {
        guard let v = env[key], !v.isEmpty else { throw ValidationError("--from-slurm-env: \(key) is not set") }
        return v
    }

    /// Optional: empty, unset and Slurm's "(null)" are absent.
    func optional(_ key: String) -> String? {
        guard let v = env[key], !v.isEmpty, v != "(null)" else { return nil }
        return v
    }

    /// `SLURM_JOB_CPUS_PER_NODE` as a total: "4", "4(x2)", "4(x2),2".
    var totalCPUs: Int64? {
        guard let text = optional("SLURM_JOB_CPUS_PER_NODE") else { return nil }
        var total: Int64 = 0
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "(")
            guard let n = Int64(pieces[0]) else { return nil }
            let times = pieces.count > 1 ? Int64(pieces[1].dropFirst().dropLast()) ?? 1 : 1
            total += n * times
        }
        return total
    }

    /// An epoch-seconds variable (`SLURM_JOB_START_TIME`, `SLURM_JOB_END_TIME`: Slurm 23.02+).
    func time(_ key: String) -> Int64? { optional(key).flatMap { Int64($0) }.flatMap { $0 > 0 ? $0 : nil } }

    /// The hook's job as Slurm itself reports it (`squeue --json`: the real start and end
    /// times and end state), or nil — with a warning on standard error — when squeue cannot
    /// tell; the environment is the fallback then. squeue gets a third of the publish's
    /// time (at most 3 s); the publish keeps what squeue left (`--timeout` bounds both).
    ///
    /// `settle` > 0 (the epilog's detached copy): while squeue shows the job only as
    /// COMPLETING, it is asked again — 0.2 s, doubling to 5 s apart — for up to `settle`
    /// seconds, outside the `--timeout` budget, until Slurm shows the end state.
    static func fromSlurm(within options: PublishOptions, settle: TimeInterval = 0) -> (job: SlurmJob?, rest: PublishOptions) {
        let env = ProcessInfo.processInfo.environment
        guard let text = env["SLURM_JOB_ID"], let id = Int64(text) else { return (nil, options) }
        let started = Date(), squeue = SlurmCLI(timeout: min(3, options.timeout / 3))
        var job: SlurmJob?, waited: TimeInterval = 0, pause: TimeInterval = 0.2
        do {
            job = try squeue.job(id, cluster: env["SLURM_CLUSTER_NAME"])
            while let current = job, !current.endStateIsFinal, waited + pause <= settle {
                Thread.sleep(forTimeInterval: pause)
                waited += pause
                pause = min(5, pause * 2)
                job = try squeue.job(id, cluster: env["SLURM_CLUSTER_NAME"])
            }
            if let job, !job.endStateIsFinal, settle > 0 {
                FileHandle.standardError.write(Data("warning: job \(id): Slurm still shows it COMPLETING after \(Int(settle)) s; its end state \(job.endState ?? "?") is read from the exit status\n".utf8))
            }
            if job?.ran == false { throw SlurmCLI.Failure(description: "squeue: job \(id) has no nodes or start time yet") }
        } catch {
            FileHandle.standardError.write(Data("warning: job \(id): \(error); using the hook's environment instead\n".utf8))
            job = nil
        }
        var rest = options
        rest.timeout = max(0.5, options.timeout - (Date().timeIntervalSince(started) - waited))
        return (job, rest)
    }

    /// The end state from `SLURM_JOB_EXIT_CODE2` ("exit:signal"): 0:0 completed, a signal
    /// cancelled, any other exit code failed.
    var finalState: String {
        guard let code = optional("SLURM_JOB_EXIT_CODE2") else { return "completed" }
        let parts = code.split(separator: ":").map { Int($0) ?? 0 }
        if parts.count > 1, parts[1] != 0 { return "cancelled" }
        return parts.first == 0 ? "completed" : "failed"
    }
}

extension PublishOptions {
    /// Publishes a job event: the JSON on standard input (`json`), else in a Slurm hook
    /// (`fromSlurmEnv`) the job as `squeue --json` shows it, else what `build` makes of the
    /// options (with Slurm's hook environment when `fromSlurmEnv` and squeue had nothing).
    func sendJob(_ function: String, timeKey: String, json: Bool, fromSlurmEnv: Bool, settle: TimeInterval = 0,
                 squeue: (SlurmJob) throws -> JSONValue, build: (SlurmEnvironment?) throws -> JSONValue) throws {
        if json { return try sendJob(function, try JSONValue.parse(Array(FileHandle.standardInput.readDataToEndOfFile())), timeKey: timeKey) }
        guard fromSlurmEnv else { return try sendJob(function, try build(nil), timeKey: timeKey) }
        let (job, rest) = SlurmEnvironment.fromSlurm(within: self, settle: settle)
        if let job { return try rest.sendJob(function, try squeue(job), timeKey: timeKey) }
        try rest.sendJob(function, try build(SlurmEnvironment(env: ProcessInfo.processInfo.environment)), timeKey: timeKey)
    }
}

struct JobStartPublish: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "job-start", abstract: "Publish a start_job event.")

    @OptionGroup var publish: PublishOptions
    @Option(help: "Scheduler job id.") var jobId: Int64?
    @Option(help: "Cluster name (a <archive>/<cluster>/cluster.json must exist).") var cluster: String?
    @Option(help: "User name of the job's owner.") var user: String?
    @Option(help: "Project (Slurm: the account).") var project: String = ""
    @Option(help: "Partition (queue).") var partition: String = ""
    @Option(help: "Host list, e.g. f[0101-0104],f0200 (expanded).") var nodes: String?
    @Option(help: "Epoch seconds (default now).") var startTime: Int64?
    @Option(help: "Requested run time limit in seconds.") var walltime: Int64?
    @Option(help: "Hardware threads (CPUs) allocated in total.") var numHwthreads: Int64?
    @Option(help: "none, single_user or multi_user.") var shared: String?
    @Option(help: "The job's name (metaData.jobName).") var jobName: String?
    @Flag(help: "Read the whole start_job JSON from standard input.") var json = false
    @Flag(help: "PrologSlurmctld mode: the job from `squeue --json` (real start time), else from Slurm's hook environment.")
    var fromSlurmEnv = false

    func run() throws {
        try publish.sendJob("start_job", timeKey: "startTime", json: json, fromSlurmEnv: fromSlurmEnv, squeue: { try $0.startEvent() }) { slurm in
            var jobId = self.jobId, cluster = self.cluster, user = self.user, project = self.project, partition = self.partition
            var nodes = self.nodes, threads = numHwthreads, name = jobName, startTime = self.startTime
            if let slurm {
                jobId = try jobId ?? Int64(slurm.value("SLURM_JOB_ID"))
                cluster = try cluster ?? slurm.value("SLURM_CLUSTER_NAME")
                user = try user ?? slurm.value("SLURM_JOB_USER")
                if project.isEmpty { project = slurm.optional("SLURM_JOB_ACCOUNT") ?? slurm.optional("SLURM_JOB_GROUP") ?? "" }
                if partition.isEmpty { partition = slurm.optional("SLURM_JOB_PARTITION") ?? "" }
                nodes = try nodes ?? slurm.value("SLURM_JOB_NODELIST")
                threads = threads ?? slurm.totalCPUs
                name = name ?? slurm.optional("SLURM_JOB_NAME")
                startTime = startTime ?? slurm.time("SLURM_JOB_START_TIME")
            }
            guard let jobId, let cluster, let user, let nodes else { throw ValidationError("give --job-id, --cluster, --user and --nodes (or --from-slurm-env or --json)") }
            let hosts: [String]
            do { hosts = try NodeList(nodes).expanded() } catch { throw ValidationError("\(error)") }
            var b = JSONObjectBuilder()
            b.add("jobId", jobId)
            b.add("user", user)
            b.add("project", project)
            b.add("cluster", cluster)
            b.add("partition", partition)
            b.add("numNodes", Int64(hosts.count))
            if let threads { b.add("numHwthreads", threads) }
            if let walltime { b.add("walltime", walltime) }
            if let shared { b.add("shared", shared) }
            b.add("resources", .array(hosts.map { .object([("hostname", .string($0))]) }))
            if let name { b.add("metaData", .object([("jobName", .string(name))])) }
            b.add("startTime", startTime ?? Int64(Date().timeIntervalSince1970))
            return b.value
        }
    }
}

struct JobStopPublish: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "job-stop", abstract: "Publish a stop_job event.")

    @OptionGroup var publish: PublishOptions
    @Option(help: "Scheduler job id.") var jobId: Int64?
    @Option(help: "Cluster name.") var cluster: String?
    @Option(help: "The start time, to tell a requeued job's runs apart.") var startTime: Int64?
    @Option(help: "Epoch seconds (default now).") var stopTime: Int64?
    @Option(help: "completed, failed, cancelled, timeout, node_fail, out_of_memory, ... (default completed).") var state: String?
    @Flag(help: "Read the whole stop_job JSON from standard input.") var json = false
    @Flag(help: "EpilogSlurmctld mode: end time and state from `squeue --json`, else from the hook environment (state from SLURM_JOB_EXIT_CODE2).")
    var fromSlurmEnv = false
    @Option(help: ArgumentHelp("With --from-slurm-env: while squeue shows the job only COMPLETING (Slurm 22.05 does until EpilogSlurmctld exits), ask again for up to this many seconds for its end state. The hook does this after the epilog, detached.", valueName: "seconds"))
    var settleSeconds: Double = 0

    func run() throws {
        try publish.sendJob("stop_job", timeKey: "stopTime", json: json, fromSlurmEnv: fromSlurmEnv, settle: settleSeconds,
                            squeue: { try $0.stopEvent() }) { slurm in
            var jobId = self.jobId, cluster = self.cluster, state = self.state, startTime = self.startTime, stopTime = self.stopTime
            if let slurm {
                jobId = try jobId ?? Int64(slurm.value("SLURM_JOB_ID"))
                cluster = try cluster ?? slurm.value("SLURM_CLUSTER_NAME")
                state = state ?? slurm.finalState
                startTime = startTime ?? slurm.time("SLURM_JOB_START_TIME")
                stopTime = stopTime ?? slurm.time("SLURM_JOB_END_TIME")
            }
            guard let jobId else { throw ValidationError("give --job-id (or --from-slurm-env or --json)") }
            var b = JSONObjectBuilder()
            b.add("jobId", jobId)
            if let cluster { b.add("cluster", cluster) }
            if let startTime { b.add("startTime", startTime) }
            b.add("jobState", state ?? "completed")
            b.add("stopTime", stopTime ?? Int64(Date().timeIntervalSince1970))
            return b.value
        }
    }
}

struct NodeStatePublish: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node-state",
                                                    abstract: "Publish a nodestate event: {\"cluster\", \"nodes\": [...]} JSON on standard input.")

    @OptionGroup var publish: PublishOptions

    func run() throws {
        let payload = try JSONValue.parse(Array(FileHandle.standardInput.readDataToEndOfFile()))
        let (line, id) = try nodeStateMessage(payload, time: Int64(Date().timeIntervalSince1970))
        try publish.send(line: line, stage: "nodes", defaultSubject: "cc.node.state", cluster: payload["cluster"]?.stringValue, messageID: id)
    }
}
