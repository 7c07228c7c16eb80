import Foundation

/// Writes the ClusterCockpit job-archive v3 tree:
/// `<root>/version.txt`, `<root>/<cluster>/cluster.json` and
/// `<root>/<cluster>/<jobId/1000>/<jobId%1000 as %03d>/<startTime>/meta.json`.
/// Every file is written to a temporary name and renamed, so a crash never leaves a
/// half-written file behind.
public struct ArchiveWriter: Sendable {
    /// The archive root.
    public let root: String

    /// Why the archive could not be written.
    public struct WriteError: Error, Sendable, CustomStringConvertible {
        /// The file.
        public let path: String
        /// The system's reason.
        public let reason: String
        public var description: String { "cannot write \(path): \(reason)" }
    }

    /// An archive at `root`; creates it with `version.txt` = 3 when new, and refuses a root
    /// of another version.
    public init(root: String) throws(WriteError) {
        self.root = root
        let version = "\(root)/version.txt"
        if let data = FileManager.default.contents(atPath: version) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text != "3" { throw WriteError(path: version, reason: "archive version is \(text), clusterd writes version 3") }
        } else {
            try Self.atomicWrite(Array("3\n".utf8), to: version)
        }
    }

    /// The directory of one job.
    public func directory(cluster: String, jobId: Int64, startTime: Int64) -> String {
        let level2 = String(jobId % 1000)
        return "\(root)/\(cluster)/\(jobId / 1000)/\(String(repeating: "0", count: max(0, 3 - level2.count)) + level2)/\(startTime)"
    }

    /// Writes the job's meta.json; returns its path.
    @discardableResult
    public func write(_ job: JobRecord) throws(WriteError) -> String {
        let path = directory(cluster: job.start.cluster, jobId: job.start.jobId, startTime: job.start.startTime) + "/meta.json"
        try Self.atomicWrite(Array((job.metaJSON + "\n").utf8), to: path)
        return path
    }

    /// Writes `<root>/<cluster>/cluster.json` unless the file already holds these bytes.
    public func install(_ cluster: ClusterConfig) throws(WriteError) {
        let path = "\(root)/\(cluster.name)/cluster.json"
        if let existing = FileManager.default.contents(atPath: path), Array(existing) == cluster.document { return }
        try Self.atomicWrite(cluster.document, to: path)
    }

    /// Writes `bytes` to a temporary file in the target directory, syncs it, and renames it.
    public static func atomicWrite(_ bytes: [UInt8], to path: String) throws(WriteError) {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw WriteError(path: directory, reason: "\(error.localizedDescription)")
        }
        let temporary = "\(directory)/.\((path as NSString).lastPathComponent).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw WriteError(path: temporary, reason: String(cString: strerror(errno))) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw WriteError(path: temporary, reason: reason)
            }
            written += n
        }
        let synced = fsync(fd) == 0
        let reason = String(cString: strerror(errno))
        close(fd)
        if !synced {
            unlink(temporary)
            throw WriteError(path: temporary, reason: reason)
        }
        if rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw WriteError(path: path, reason: reason)
        }
    }
}
