import Foundation
import Jobs
import Model

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
        "\(root)/\(cluster)/\(jobId / 1000)/\(Self.threeDigits(jobId % 1000))/\(startTime)"
    }

    /// `n` (0…999) with leading zeros to three digits, as the v3 layout names the second level.
    static func threeDigits(_ n: Int64) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 3 - digits.utf8.count)) + digits
    }

    /// The job's meta.json path.
    public func metaPath(_ job: JobRecord) -> String {
        directory(cluster: job.start.cluster, jobId: job.start.jobId, startTime: job.start.startTime) + "/meta.json"
    }

    /// One job's archive files (`meta.json`, and `data.json` or `data.json.gz`).
    public struct Entry: Sendable {
        public var job: JobRecord
        public var files: [(name: String, bytes: [UInt8])]

        /// An entry.
        public init(job: JobRecord, files: [(name: String, bytes: [UInt8])]) {
            self.job = job
            self.files = files
        }
    }

    /// Entries whose files are written under temporary names, not yet synced or renamed
    /// (``stage(_:batch:)``); ``commit(_:)`` puts them in place.
    public struct Staged: Sendable {
        /// The entries, in the order given.
        public var entries: [Entry]
        /// Per entry: its meta.json path, or why its files could not be written.
        var results: [Result<String, WriteError>]
        /// The temporary files and where each goes.
        var files: [(index: Int, temporary: String, path: String)]

        /// Several staged sets as one, to be committed with one pair of syncs.
        public static func joined(_ sets: [Staged]) -> Staged {
            var joined = Staged(entries: [], results: [], files: [])
            for set in sets {
                let offset = joined.entries.count
                joined.entries += set.entries
                joined.results += set.results
                joined.files += set.files.map { (index: $0.index + offset, temporary: $0.temporary, path: $0.path) }
            }
            return joined
        }
    }

    /// Writes the files of many jobs with two file-system syncs in all instead of one per
    /// file: every temporary file is written, synced once, renamed into place, and the
    /// renames synced once. Only after that are the entries reported written (with their
    /// meta.json path), so a crash at any point leaves either the old state (re-archived on
    /// restart) or complete files.
    public func write(_ entries: [Entry]) -> [Result<String, WriteError>] {
        commit(stage(entries))
    }

    /// The first half of ``write(_:)``: every entry's files written under temporary names
    /// (unsynced). `batch` tells the names of one call from another's, so that two staged
    /// sets in flight at once never share a temporary file.
    public func stage(_ entries: [Entry], batch: UInt64 = 0) -> Staged {
        var results: [Result<String, WriteError>] = []
        var staged: [(index: Int, temporary: String, path: String)] = []
        // `<root>/<cluster>/<jobId/1000>`, opened once per batch: a job's two new levels and
        // its files are made relative to it, a walk of two or three path components instead
        // of the whole path (~3 % of this thread's CPU). Held for this call only, so a
        // directory removed or moved meanwhile is never written through.
        var bases: [String: Int32] = [:]
        defer { for fd in bases.values where fd >= 0 { close(fd) } }
        for (i, entry) in entries.enumerated() {
            let job = entry.job.start
            let base = "\(root)/\(job.cluster)/\(job.jobId / 1000)"
            let relative = "\(Self.threeDigits(job.jobId % 1000))/\(job.startTime)"
            let dir = "\(base)/\(relative)"
            let fd = bases[base] ?? { let fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC); bases[base] = fd; return fd }()
            var mine: [(index: Int, temporary: String, path: String)] = []
            do {
                for file in entry.files {
                    // Named per entry and batch: two entries in flight may share a directory.
                    mine.append((i, try Self.writeTemporary(file.bytes, directory: dir, name: file.name, sync: false, tag: "\(batch).\(i)",
                                                            at: fd >= 0 ? (fd, relative) : nil),
                                 "\(dir)/\(file.name)"))
                }
                staged += mine
                results.append(.success("\(dir)/meta.json"))
            } catch {
                for m in mine { unlink(m.temporary) }
                results.append(.failure(error))
            }
            if fd < 0 { bases[base] = nil }  // created by the first entry under it (a new thousand of ids)
        }
        return Staged(entries: entries, results: results, files: staged)
    }

    /// The second half of ``write(_:)``: syncs the staged files, renames them into place and
    /// syncs the renames; returns each entry's meta.json path or error.
    public func commit(_ staged: Staged) -> [Result<String, WriteError>] {
        var results = staged.results
        guard !staged.files.isEmpty else { return results }
        if !Self.syncFileSystem(of: root) {
            let error = WriteError(path: root, reason: "syncfs: \(String(cString: strerror(errno)))")
            for s in staged.files { unlink(s.temporary); results[s.index] = .failure(error) }
            return results
        }
        for s in staged.files where rename(s.temporary, s.path) != 0 && results[s.index].isSuccess {
            results[s.index] = .failure(WriteError(path: s.path, reason: String(cString: strerror(errno))))
            unlink(s.temporary)
        }
        if !Self.syncFileSystem(of: root) {
            let error = WriteError(path: root, reason: "syncfs: \(String(cString: strerror(errno)))")
            for s in staged.files { results[s.index] = .failure(error) }
        }
        return results
    }

    static func syncFileSystem(of path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { return false }
        defer { close(fd) }
        #if os(Linux)
        return linuxSyncfs(fd) == 0
        #else
        return fsync(fd) == 0
        #endif
    }

    /// Writes `<root>/<cluster>/cluster.json` unless the file already holds these bytes.
    public func install(_ cluster: ClusterConfig) throws(WriteError) {
        let path = "\(root)/\(cluster.name)/cluster.json"
        if let existing = FileManager.default.contents(atPath: path), Array(existing) == cluster.document { return }
        try Self.atomicWrite(cluster.document, to: path)
    }

    /// Writes `bytes` to a temporary file in the target directory, syncs it, and renames it.
    public static func atomicWrite(_ bytes: [UInt8], to path: String) throws(WriteError) {
        let temporary = try writeTemporary(bytes, for: path, sync: true)
        if rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw WriteError(path: path, reason: reason)
        }
    }

    /// Writes `bytes` to a temporary file beside `path` (optionally synced); returns its name.
    static func writeTemporary(_ bytes: [UInt8], for path: String, sync: Bool, tag: String = "") throws(WriteError) -> String {
        try writeTemporary(bytes, directory: (path as NSString).deletingLastPathComponent, name: (path as NSString).lastPathComponent,
                           sync: sync, tag: tag)
    }

    /// Creates `directory` and, when missing, its parent: the two levels a new job adds
    /// (`<jobId%1000>/<startTime>`), two system calls instead of FileManager's walk of every
    /// level; FileManager only when more is missing (a new cluster or thousand of ids).
    static func makeDirectory(_ directory: String) throws(WriteError) {
        if mkdir(directory, 0o755) == 0 || errno == EEXIST { return }
        if errno == ENOENT, let slash = directory.utf8.lastIndex(of: UInt8(ascii: "/")) {
            let parent = String(directory[..<slash])
            if (mkdir(parent, 0o755) == 0 || errno == EEXIST) && (mkdir(directory, 0o755) == 0 || errno == EEXIST) { return }
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw WriteError(path: directory, reason: "\(error.localizedDescription)")
        }
    }

    /// Writes `bytes` to a temporary file in `directory` (created when missing) for the file
    /// `name` (optionally synced); returns the temporary's path. With `at`, the directory is
    /// made and the file created relative to that open directory (`relative` is `directory`
    /// below it, two levels deep).
    static func writeTemporary(_ bytes: [UInt8], directory: String, name: String, sync: Bool, tag: String = "",
                               at base: (fd: Int32, relative: String)? = nil) throws(WriteError) -> String {
        let file = ".\(name).\(getpid())\(tag.isEmpty ? "" : ".\(tag)").tmp"
        let temporary = "\(directory)/\(file)"
        let flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC
        let fd: Int32
        if let base, let slash = base.relative.utf8.lastIndex(of: UInt8(ascii: "/")),
           mkdirat(base.fd, String(base.relative[..<slash]), 0o755) == 0 || errno == EEXIST,
           mkdirat(base.fd, base.relative, 0o755) == 0 || errno == EEXIST {
            fd = openat(base.fd, "\(base.relative)/\(file)", flags, 0o644)
        } else {
            try makeDirectory(directory)
            fd = open(temporary, flags, 0o644)
        }
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
        let synced = !sync || fsync(fd) == 0
        let reason = String(cString: strerror(errno))
        close(fd)
        if !synced {
            unlink(temporary)
            throw WriteError(path: temporary, reason: reason)
        }
        return temporary
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}

#if os(Linux)
/// glibc's syncfs(2) (flushes one file system), which the Glibc module does not import
/// without _GNU_SOURCE.
@_silgen_name("syncfs")
private func linuxSyncfs(_ fd: Int32) -> Int32
#endif
