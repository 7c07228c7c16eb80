import Archive
import ArgumentParser
import Bus
import Foundation
import Jobs
import Model

/// `clusterd archive export|import`: move job archives between clusterd, ClusterCockpit
/// archive directories and single JSON-lines files, byte for byte.
struct ArchiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive",
        abstract: "Export or import a job archive (ClusterCockpit v3 layout) as a directory or a JSON-lines file.",
        subcommands: [Export.self, Import.self, Protect.self]
    )

    /// `path` when it exists: reading an archive must not make an empty one.
    static func existing(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("\(path): no such archive") }
        return path
    }

    /// A progress bar on a terminal, nothing for scripts.
    struct Progress {
        let quiet: Bool
        let tty = isatty(STDERR_FILENO) == 1

        func show(_ done: Int, _ total: Int) {
            guard !quiet, tty, total > 0, done == total || done % 50 == 0 else { return }
            let width = 30
            let filled = width * done / total
            FileHandle.standardError.write(Data("\r[\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] \(done)/\(total) files".utf8))
            if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Copy an archive to a directory (ClusterCockpit layout) or a .jsonl file.")
        @Option(help: "The archive to read (clusterd's is <data_dir>/archive).") var archive = "./clusterd-data/archive"
        @Option(help: "Read this SQLite archive (storage.archive_kind: sqlite; clusterd's is <data_dir>/job-archive.db) instead of a directory.")
        var archiveDatabase: String?
        @Option(help: "Target directory, or a file ending in .jsonl.") var to: String
        @Option(help: "Only this cluster.") var cluster: String?
        @Flag(help: "Replace files that differ in an existing target directory.") var overwrite = false
        @Flag(help: "No progress bar.") var quiet = false

        func run() throws {
            if let archiveDatabase {
                let database = try ArchiveDatabase(path: try ArchiveCommand.existing(archiveDatabase), readOnly: true)
                let (jobs, files) = try ArchiveTransfer.export(database, cluster: cluster, to: to, overwrite: overwrite, progress: Progress(quiet: quiet).show)
                if !quiet { print("exported \(jobs) jobs, \(files) files to \(to)") }
                return
            }
            let paths = try ArchiveTransfer.files(in: archive, cluster: cluster)
            let progress = Progress(quiet: quiet)
            if to.hasSuffix(".jsonl") {
                try ArchiveTransfer.exportLines(paths, from: archive, to: to, progress: progress.show)
            } else {
                try ArchiveTransfer.copy(paths, from: archive, to: to, overwrite: overwrite, progress: progress.show)
            }
            if !quiet { print("exported \(ArchiveTransfer.jobs(paths)) jobs, \(paths.count) files to \(to)") }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Copy a directory archive or a .jsonl export into an archive.")
        @Option(help: "Source directory, or a .jsonl file written by export.") var from: String
        @Option(help: "The archive to write into.") var archive = "./clusterd-data/archive"
        @Option(help: "Write into this SQLite archive (storage.archive_kind: sqlite; made when missing) instead of a directory.")
        var archiveDatabase: String?
        @Flag(help: "Replace files that differ.") var overwrite = false
        @Flag(help: "No progress bar.") var quiet = false

        func run() throws {
            let progress = Progress(quiet: quiet)
            if let archiveDatabase {
                let (jobs, files) = try ArchiveTransfer.importFiles(from: from, into: try ArchiveDatabase(path: archiveDatabase), overwrite: overwrite,
                                                                    progress: progress.show)
                if !quiet { print("imported \(jobs) jobs, \(files) files into \(archiveDatabase)") }
                return
            }
            if from.hasSuffix(".jsonl") {
                let n = try ArchiveTransfer.importLines(from: from, to: archive, overwrite: overwrite, progress: progress.show)
                if !quiet { print("imported \(n) files into \(archive)") }
            } else {
                let paths = try ArchiveTransfer.files(in: from)
                try ArchiveTransfer.copy(paths, from: from, to: archive, overwrite: overwrite, progress: progress.show)
                if !quiet { print("imported \(ArchiveTransfer.jobs(paths)) jobs, \(paths.count) files into \(archive)") }
            }
        }
    }

    struct Protect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Protect a job from archive retention (jobs.archive_retention_days), or lift it, on a running clusterd.")
        @Option var jobId: Int64
        @Option var cluster: String
        @Option(help: "Tell apart runs of a requeued job id.") var startTime: Int64?
        @Option(help: "Who protects it (kept with the job).") var by: String
        @Option var reason: String = ""
        @Flag(help: "Lift the protection.") var unprotect = false
        @Option(help: "NATS server URL (default $NATS_URL or nats://127.0.0.1:4222).") var server: String?

        func run() throws {
            var b = JSONObjectBuilder()
            b.add("jobId", jobId)
            b.add("cluster", cluster)
            if let startTime { b.add("startTime", startTime) }
            b.add("protected", !unprotect)
            b.add("by", by)
            b.add("reason", reason)
            let reply = try QueryCommand.request(server, name: "clusterd-archive", subject: "clusterd.admin.jobs.protect", body: b.value, timeout: 5)
            print(reply.text)
        }
    }
}
