import ArgumentParser
import Bus
import Foundation
import LineProtocol
import Model

/// `clusterd publish`: what a scheduler hook runs. Builds the exact ClusterCockpit event,
/// publishes it (JetStream with a message id, so a retried hook is de-duplicated; core
/// request/reply when there is no stream), waits for clusterd's result and exits non-zero
/// with the reason when the event was refused or no result came.
struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish a job start, job stop or node state as a scheduler hook would, and wait for clusterd's verdict.",
        discussion: """
            job-start and job-stop take flags, JSON on standard input (--json), or the variables Slurm gives \
            PrologSlurmctld/EpilogSlurmctld (--from-slurm-env: SLURM_JOB_ID, SLURM_JOB_USER, SLURM_JOB_ACCOUNT, \
            SLURM_JOB_PARTITION, SLURM_JOB_NODELIST (hostlists are expanded), SLURM_CLUSTER_NAME, SLURM_JOB_NUM_NODES, \
            SLURM_JOB_CPUS_PER_NODE, SLURM_JOB_NAME, and in the epilog SLURM_JOB_EXIT_CODE2). \
            Exit codes: 0 accepted, 1 refused (reason on standard error), 2 usage or connection error, 3 no result in time.
            """,
        subcommands: [JobStartPublish.self, JobStopPublish.self, NodeStatePublish.self]
    )
}

/// Options every publish shares.
struct PublishOptions: ParsableArguments {
    @Option(help: "NATS server URL (default $NATS_URL or nats://127.0.0.1:4222).") var server: String?
    @Option(help: "Subject (default cc.job.event, or cc.node.state for node-state).") var subject: String?
    @Option(help: "Seconds to wait for clusterd's result.") var timeout: Double = 10
    @Option(help: "Nats-Msg-Id (default: derived from the event, so a retry is de-duplicated).") var messageID: String?
    @Option(name: .customLong("nats-user"), help: "NATS user and password (or $CLUSTERD_NATS_USER / $CLUSTERD_NATS_PASSWORD).") var natsUser: String?
    @Option(name: .customLong("nats-password")) var natsPassword: String?
    @Flag(help: "Print the payload instead of sending it.") var dryRun = false

    /// Sends one line-protocol event and waits for the result on `clusterd.result.<stage>.<id>`.
    func send(line: [UInt8], stage: String, defaultSubject: String, messageID defaultID: String) throws {
        let subject = self.subject ?? defaultSubject
        let id = messageID ?? defaultID
        if dryRun {
            print("\(subject) Nats-Msg-Id: \(id)")
            print(String(decoding: line, as: UTF8.self), terminator: "")
            return
        }
        var options = ConnectionOptions(servers: [QueryCommand.serverURL(server)], name: "clusterd-publish")
        let env = ProcessInfo.processInfo.environment
        options.user = natsUser ?? env["CLUSTERD_NATS_USER"]
        options.password = natsPassword ?? env["CLUSTERD_NATS_PASSWORD"]
        options.sendAsap = true
        let connection: BusConnection
        do { connection = try BusConnection(options) } catch {
            FileHandle.standardError.write(Data("cannot connect to NATS: \(error)\n".utf8))
            throw ExitCode(2)
        }
        defer { connection.close() }
        let token = String(id.map { $0 == "." || $0 == "*" || $0 == ">" || $0.isWhitespace || !$0.isASCII ? "_" : $0 })
        let box = ResultWaiter()
        let sub: BusSubscription
        do {
            sub = try connection.subscribe("clusterd.result.\(stage).\(token)") { box.put($0) }
            try connection.flush(timeout: .seconds(Int64(max(1, min(timeout, 5)))))
        } catch {
            FileHandle.standardError.write(Data("cannot reach NATS at \(QueryCommand.serverURL(server)): \(error)\n".utf8))
            throw ExitCode(2)
        }
        let message = BusMessage(subject: subject, headers: ["Nats-Msg-Id": [id]], data: line)
        var answer: BusMessage?
        do {
            _ = try JetStream(connection, timeout: .seconds(2)).publish(message, messageID: id, retries: 3, interval: .milliseconds(500))
            answer = box.wait(timeout)
        } catch {
            // No stream: clusterd runs in core mode and answers on the reply subject.
            answer = try? connection.request(message, timeout: .seconds(Int64(timeout)))
        }
        sub.unsubscribe()
        guard let answer else {
            FileHandle.standardError.write(Data("no result from clusterd within \(timeout) s for \(id)\n".utf8))
            throw ExitCode(3)
        }
        print(answer.text)
        let result = try? JSONValue.parse(answer.data)
        if result?["ok"] == .bool(false) {
            FileHandle.standardError.write(Data("refused: \(result?["error"]?.stringValue ?? answer.text)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// Sends a job event; its time (`timeKey`) stamps the line, and the message id is
    /// `<function>-<cluster>-<jobId>-<time>`, the same for every retry of the same event.
    func sendJob(_ function: String, _ payload: JSONValue, timeKey: String) throws {
        var time = Int64(Date().timeIntervalSince1970)
        if case .integer(let t)? = payload[timeKey] { time = t }
        let id = "\(function)-\(payload["cluster"]?.stringValue ?? "")-\(payload["jobId"]?.jsonText ?? "")-\(time)"
        try send(line: try eventLine(measurement: "job", function: function, json: payload, time: time), stage: "jobs",
                 defaultSubject: "cc.job.event", messageID: id)
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

    /// The end state from `SLURM_JOB_EXIT_CODE2` ("exit:signal"): 0:0 completed, a signal
    /// cancelled, any other exit code failed.
    var finalState: String {
        guard let code = optional("SLURM_JOB_EXIT_CODE2") else { return "completed" }
        let parts = code.split(separator: ":").map { Int($0) ?? 0 }
        if parts.count > 1, parts[1] != 0 { return "cancelled" }
        return parts.first == 0 ? "completed" : "failed"
    }
}

struct JobStartPublish: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "job-start", abstract: "Publish a start_job event.")

    @OptionGroup var publish: PublishOptions
    @Option(help: "Scheduler job id.") var jobId: Int64?
    @Option var cluster: String?
    @Option var user: String?
    @Option var project: String = ""
    @Option var partition: String = ""
    @Option(help: "Host list, e.g. f[0101-0104],f0200 (expanded).") var nodes: String?
    @Option(help: "Epoch seconds (default now).") var startTime: Int64?
    @Option(help: "Seconds.") var walltime: Int64?
    @Option var numHwthreads: Int64?
    @Option(help: "none, single_user or multi_user.") var shared: String?
    @Option var jobName: String?
    @Flag(help: "Read the whole start_job JSON from standard input.") var json = false
    @Flag(help: "Take everything from Slurm's PrologSlurmctld environment.") var fromSlurmEnv = false

    func run() throws {
        var payload: JSONValue
        if json {
            payload = try JSONValue.parse(Array(FileHandle.standardInput.readDataToEndOfFile()))
        } else {
            var jobId = self.jobId, cluster = self.cluster, user = self.user, project = self.project, partition = self.partition
            var nodes = self.nodes, threads = numHwthreads, name = jobName
            if fromSlurmEnv {
                let slurm = SlurmEnvironment(env: ProcessInfo.processInfo.environment)
                jobId = try jobId ?? Int64(slurm.value("SLURM_JOB_ID"))
                cluster = try cluster ?? slurm.value("SLURM_CLUSTER_NAME")
                user = try user ?? slurm.value("SLURM_JOB_USER")
                if project.isEmpty { project = slurm.optional("SLURM_JOB_ACCOUNT") ?? "" }
                if partition.isEmpty { partition = slurm.optional("SLURM_JOB_PARTITION") ?? "" }
                nodes = try nodes ?? slurm.value("SLURM_JOB_NODELIST")
                threads = threads ?? slurm.totalCPUs
                name = name ?? slurm.optional("SLURM_JOB_NAME")
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
            payload = b.value
        }
        try publish.sendJob("start_job", payload, timeKey: "startTime")
    }
}

struct JobStopPublish: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "job-stop", abstract: "Publish a stop_job event.")

    @OptionGroup var publish: PublishOptions
    @Option var jobId: Int64?
    @Option var cluster: String?
    @Option(help: "The start time, to tell a requeued job's runs apart.") var startTime: Int64?
    @Option(help: "Epoch seconds (default now).") var stopTime: Int64?
    @Option(help: "completed, failed, cancelled, timeout, node_fail, out_of_memory, ... (default completed).") var state: String?
    @Flag(help: "Read the whole stop_job JSON from standard input.") var json = false
    @Flag(help: "Take everything from Slurm's EpilogSlurmctld environment (state from SLURM_JOB_EXIT_CODE2).") var fromSlurmEnv = false

    func run() throws {
        var payload: JSONValue
        if json {
            payload = try JSONValue.parse(Array(FileHandle.standardInput.readDataToEndOfFile()))
        } else {
            var jobId = self.jobId, cluster = self.cluster, state = self.state
            if fromSlurmEnv {
                let slurm = SlurmEnvironment(env: ProcessInfo.processInfo.environment)
                jobId = try jobId ?? Int64(slurm.value("SLURM_JOB_ID"))
                cluster = try cluster ?? slurm.value("SLURM_CLUSTER_NAME")
                state = state ?? slurm.finalState
            }
            guard let jobId else { throw ValidationError("give --job-id (or --from-slurm-env or --json)") }
            var b = JSONObjectBuilder()
            b.add("jobId", jobId)
            if let cluster { b.add("cluster", cluster) }
            if let startTime { b.add("startTime", startTime) }
            b.add("jobState", state ?? "completed")
            b.add("stopTime", stopTime ?? Int64(Date().timeIntervalSince1970))
            payload = b.value
        }
        try publish.sendJob("stop_job", payload, timeKey: "stopTime")
    }
}

struct NodeStatePublish: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node-state",
                                                    abstract: "Publish a nodestate event: {\"cluster\", \"nodes\": [...]} JSON on standard input.")

    @OptionGroup var publish: PublishOptions

    func run() throws {
        let payload = try JSONValue.parse(Array(FileHandle.standardInput.readDataToEndOfFile()))
        let now = Int64(Date().timeIntervalSince1970)
        try publish.send(line: try eventLine(measurement: "nodestate", function: nil, json: payload, time: now), stage: "nodes",
                         defaultSubject: "cc.node.state", messageID: "nodestate-\(payload["cluster"]?.stringValue ?? "")-\(now)")
    }
}
