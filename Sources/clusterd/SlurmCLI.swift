import Foundation
import Slurm

/// Runs Slurm's client commands (`squeue`, `sinfo`) found on `PATH` and reads their JSON.
/// They talk to slurmctld, so each call is bounded in time.
struct SlurmCLI {
    /// Seconds one command may take.
    var timeout: Double = 10

    /// Why a command could not be run or failed.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Standard output of `command arguments`, or a failure with its standard error.
    func run(_ command: String, _ arguments: [String]) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [command] + arguments
        let output = Pipe(), error = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = error
        do { try process.run() } catch { throw Failure(description: "\(command): cannot run: \(error)") }
        let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        nonisolated(unsafe) var errorText = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errorText = error.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let out = output.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        killer.cancel()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let text = String(decoding: errorText, as: UTF8.self).split(separator: "\n").joined(separator: "; ")
            let how = process.terminationReason == .exit ? "exit \(process.terminationStatus)" : "killed after \(timeout) s"
            throw Failure(description: "\(([command] + arguments).joined(separator: " ")): \(how)\(text.isEmpty ? "" : ": \(text)")")
        }
        return Array(out)
    }

    /// One job, whatever its state (slurmctld keeps ended jobs for MinJobAge, 300 s by default).
    func job(_ id: Int64, cluster: String?) throws -> SlurmJob {
        let jobs = try SlurmJob.list(run("squeue", ["--json", "--states=all", "--jobs=\(id)"]), defaultCluster: cluster)
        guard let job = jobs.first(where: { $0.id == id }) else { throw Failure(description: "squeue: job \(id) not found") }
        return job
    }

    /// Every job slurmctld still knows (running, pending and recently ended).
    func jobs(cluster: String?) throws -> [SlurmJob] {
        try SlurmJob.list(run("squeue", ["--json", "--states=all"]), defaultCluster: cluster)
    }

    /// Jobs from the accounting database that started since `since` (epoch s); fails where
    /// Slurm keeps no accounting.
    func accountedJobs(since: Int64, cluster: String?) throws -> [SlurmJob] {
        let start = ISO8601DateFormatter.string(from: Date(timeIntervalSince1970: TimeInterval(since)), timeZone: .current,
                                                formatOptions: [.withFullDate, .withTime, .withColonSeparatorInTime, .withDashSeparatorInDate])
        return try SlurmJob.list(run("sacct", ["--json", "--allusers", "--starttime=\(start)"]), defaultCluster: cluster)
    }

    /// Every node with its state.
    func nodes() throws -> [SlurmNode] {
        try SlurmNode.list(run("sinfo", ["--json"]))
    }
}
