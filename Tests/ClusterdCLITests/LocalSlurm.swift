import Foundation

/// A real Slurm on this machine (Debian's slurm-wlm and munge, run as root): slurmctld and
/// one slurmd serving node `f0101` of cluster `fritz`, state and logs in a temporary
/// directory, its own ports. See ../shared/reference/slurm-local.md.
final class LocalSlurm {
    let directory: URL
    var conf: URL { directory.appendingPathComponent("slurm.conf") }
    let node = "f0101"

    /// Why a real Slurm cannot run here (nil when it can).
    static var missing: String? {
        for tool in ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch", "/usr/sbin/munged"]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is not installed (scripts/install-deps --test installs slurm-wlm and munge)"
        }
        return getuid() == 0 ? nil : "slurmctld and slurmd run as root here"
    }

    /// Writes slurm.conf with `hook` as PrologSlurmctld and EpilogSlurmctld and starts
    /// munged (when not running), slurmctld and slurmd.
    init(directory: URL, hook: String) throws {
        self.directory = directory
        for sub in ["state", "spool", "log"] {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        let memory = max(1024, Int(ProcessInfo.processInfo.physicalMemory / 1_048_576) - 1024)
        let text = """
            ClusterName=fritz
            SlurmctldHost=\(ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost")
            SlurmctldPort=16817
            SlurmdPort=16818
            AuthType=auth/munge
            ProctrackType=proctrack/linuxproc
            TaskPlugin=task/none
            SlurmUser=root
            SlurmdUser=root
            StateSaveLocation=\(directory.path)/state
            SlurmdSpoolDir=\(directory.path)/spool
            SlurmctldLogFile=\(directory.path)/log/slurmctld.log
            SlurmdLogFile=\(directory.path)/log/slurmd.log
            SlurmctldPidFile=\(directory.path)/slurmctld.pid
            SlurmdPidFile=\(directory.path)/slurmd.pid
            SelectType=select/cons_tres
            SelectTypeParameters=CR_Core
            ReturnToService=2
            KillWait=2
            PrologSlurmctld=\(hook)
            EpilogSlurmctld=\(hook)
            NodeName=\(node) NodeHostname=\(ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost") NodeAddr=127.0.0.1 CPUs=\(ProcessInfo.processInfo.processorCount) RealMemory=\(memory)
            PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP

            """
        try text.write(to: conf, atomically: true, encoding: .utf8)
        if try run("/bin/sh", ["-c", "munge -n | unmunge >/dev/null 2>&1"]).status != 0 {
            _ = try run("/bin/sh", ["-c", "mkdir -p /run/munge && chown munge /run/munge && su -s /bin/sh munge -c munged"])
        }
        // A run that was killed may have left daemons on this Slurm's ports.
        _ = try? run("/bin/sh", ["-c", "fuser -k -KILL 16817/tcp 16818/tcp 2>/dev/null || pkill -KILL -f '^/usr/sbin/slurm(ctld|d -N \(node))$'; sleep 0.5"])
        for daemon in [["/usr/sbin/slurmctld"], ["/usr/sbin/slurmd", "-N", node]] {
            let r = try run(daemon[0], Array(daemon.dropFirst()))
            guard r.status == 0 else { throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(daemon[0]): \(r.stdout)\(r.stderr)\n\(logs)"]) }
        }
    }

    /// The environment every Slurm command needs here.
    var environment: [String: String] { ["SLURM_CONF": conf.path] }

    /// Runs a Slurm (or any) command with ``environment``.
    func run(_ command: String, _ arguments: [String]) throws -> CLIRunner.Result {
        try CLIRunner.runProgram(command, arguments, environment: ["SLURM_CONF": conf.path])
    }

    /// `sbatch --parsable <arguments>`: the job id.
    func submit(_ arguments: [String]) throws -> Int {
        let r = try run("sbatch", ["--parsable", "--chdir", directory.path, "--output", "/dev/null"] + arguments)
        guard r.status == 0, let id = Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first ?? "") else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "sbatch: \(r.stdout)\(r.stderr)"])
        }
        return id
    }

    /// A job as `squeue --json` reports it (jobs stay for MinJobAge after they end).
    func job(_ id: Int) throws -> [String: Any]? {
        let r = try run("squeue", ["--json", "--states=all", "--jobs=\(id)"])
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return (json?["jobs"] as? [[String: Any]])?.first { ($0["job_id"] as? Int) == id }
    }

    /// The job's state word (RUNNING, COMPLETED, ...).
    func state(_ id: Int) -> String {
        ((try? job(id))??["job_state"] as? String) ?? "?"
    }

    /// The node's state as sinfo prints it (idle, drained, ...).
    var nodeState: String {
        ((try? run("sinfo", ["-h", "-N", "-o", "%T"]))?.stdout ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Both daemons' logs, for failure messages.
    var logs: String {
        ["slurmctld", "slurmd"].map { name in
            "--- \(name).log\n" + ((try? String(contentsOf: directory.appendingPathComponent("log/\(name).log"), encoding: .utf8)) ?? "")
                .split(separator: "\n").suffix(15).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Stops slurmd and slurmctld (munged stays: it is the machine's).
    func stop() {
        for name in ["slurmd", "slurmctld"] {
            let file = directory.appendingPathComponent("\(name).pid")
            if let text = try? String(contentsOf: file, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGTERM)
                for _ in 0..<50 where kill(pid, 0) == 0 { usleep(100_000) }
                kill(pid, SIGKILL)  // slurmd may ignore SIGTERM while it is busy
            }
        }
    }

    deinit { stop() }
}
